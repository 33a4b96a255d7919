//! Model cards: what a registered model version is, made from its lineage (the run that made
//! it, its parameters and metrics, the dataset versions it learned from with their hashes and
//! validations), what a person wrote about it (its intended use and limitations, version
//! tags), and its fairness evaluations (the version tag [`CARD_FAIRNESS`]), as Markdown or a
//! standalone HTML page.

use serde::{Deserialize, Serialize};

use crate::approval::{CARD_INTENDED_USE, CARD_LIMITATIONS};
use crate::entities::ModelVersion;
use crate::fairness::{GroupRates, Rates};
use crate::{Error, MetadataStore, Result};

/// The version tag holding the fairness evaluations (a JSON list of [`Fairness`]).
pub const CARD_FAIRNESS: &str = "keel.card.fairness";

/// One fairness evaluation of a version: which data, which column, which outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fairness {
    /// The sensitive column the rows are grouped by.
    pub sensitive: String,
    /// The column holding the true outcome.
    pub target: String,
    /// The outcome counted as positive (selected).
    pub positive_label: String,
    /// The dataset version evaluated on (`NAME@VERSION`) and its content hash.
    pub dataset: String,
    pub dataset_hash: String,
    /// When, in milliseconds since the epoch.
    pub time: i64,
    #[serde(flatten)]
    pub rates: Rates,
}

/// The fairness evaluations in a version's tags (none when the tag is absent or unreadable).
pub fn fairness_of(version: &ModelVersion) -> Vec<Fairness> {
    tag(version, CARD_FAIRNESS)
        .and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or_default()
}

/// `evaluations` with `new` in place of any earlier evaluation of the same sensitive column,
/// as the [`CARD_FAIRNESS`] tag's value.
pub fn with_fairness(mut evaluations: Vec<Fairness>, new: Fairness) -> Result<String> {
    evaluations.retain(|f| f.sensitive != new.sensitive);
    evaluations.push(new);
    evaluations.sort_by(|a, b| a.sensitive.cmp(&b.sensitive));
    serde_json::to_string(&evaluations).map_err(|e| Error::internal(e.to_string()))
}

fn tag<'a>(v: &'a ModelVersion, key: &str) -> Option<&'a str> {
    v.tags
        .iter()
        .find(|t| t.key == key)
        .map(|t| t.value.as_str())
        .filter(|t| !t.trim().is_empty())
}

/// A dataset the version's run used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CardDataset {
    /// As the run logged it.
    pub name: String,
    pub digest: String,
    /// `training`, `evaluation`, ... when logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The keel dataset version with that content (`NAME@VERSION`), its hash and rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    /// Its newest validation: passed, and how many of how many rules failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
}

/// A version's model card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub name: String,
    pub version: String,
    pub description: String,
    pub aliases: Vec<String>,
    pub created: i64,
    pub creator: String,
    pub source: String,
    pub status: String,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment_id: Option<String>,
    pub params: Vec<(String, String)>,
    /// Each metric's latest value.
    pub metrics: Vec<(String, f64)>,
    pub datasets: Vec<CardDataset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limitations: Option<String>,
    pub fairness: Vec<Fairness>,
    /// What the card still lacks, said in words.
    pub missing: Vec<String>,
}

/// The card of `name` version `version`, read from the store.
pub async fn assemble(store: &dyn MetadataStore, name: &str, version: &str) -> Result<ModelCard> {
    let v = store.get_model_version(name, version).await?;
    let run = match v.run_id.is_empty() {
        true => None,
        false => store.get_run(&v.run_id).await.ok(),
    };
    let mut datasets = Vec::new();
    for input in run.iter().flat_map(|r| &r.inputs.dataset_inputs) {
        let d = &input.dataset;
        let mut card = CardDataset {
            name: d.name.clone(),
            digest: d.digest.clone(),
            context: input
                .tags
                .iter()
                .find(|t| t.key == "mlflow.data.context")
                .map(|t| t.value.clone()),
            version: None,
            hash: None,
            rows: None,
            validation: None,
        };
        let versions = store
            .data_versions_by_hash(&d.digest)
            .await
            .unwrap_or_default();
        if let Some(kv) = versions
            .iter()
            .find(|x| x.name == d.name)
            .or(versions.first())
        {
            card.version = Some(format!("{}@{}", kv.name, kv.version));
            card.hash = Some(kv.hash.clone());
            card.rows = kv.row_count;
            let validations = store.list_validations(&kv.name, kv.version).await?;
            card.validation = Some(match validations.first() {
                Some(x) if x.passed => format!("passed ({} rules)", x.rules),
                Some(x) => format!("failed {} of {} rules", x.failed, x.rules),
                None => "never validated".to_string(),
            });
        }
        datasets.push(card);
    }
    let mut params: Vec<(String, String)> = run
        .iter()
        .flat_map(|r| &r.data.params)
        .map(|p| (p.key.clone(), p.value.clone()))
        .collect();
    params.sort();
    let mut metrics: Vec<(String, f64)> = run
        .iter()
        .flat_map(|r| &r.data.metrics)
        .map(|m| (m.key.clone(), m.value))
        .collect();
    metrics.sort_by(|a, b| a.0.cmp(&b.0));
    let intended_use = tag(&v, CARD_INTENDED_USE).map(String::from);
    let limitations = tag(&v, CARD_LIMITATIONS).map(String::from);
    let fairness = fairness_of(&v);
    let mut missing = Vec::new();
    if intended_use.is_none() {
        missing.push(format!(
            "intended use (the version tag {CARD_INTENDED_USE})"
        ));
    }
    if limitations.is_none() {
        missing.push(format!("limitations (the version tag {CARD_LIMITATIONS})"));
    }
    if run.is_none() {
        missing.push("the run that made the version".to_string());
    } else if datasets.is_empty() {
        missing.push("the data the run used".to_string());
    }
    if fairness.is_empty() {
        missing.push("a fairness evaluation (keel models fairness)".to_string());
    }
    Ok(ModelCard {
        name: v.name.clone(),
        version: v.version.clone(),
        description: v.description.clone(),
        aliases: v.aliases.clone(),
        created: v.creation_timestamp,
        creator: v.user_id.clone(),
        source: v.source.clone(),
        status: v.status.clone(),
        run_id: v.run_id.clone(),
        run_name: run.as_ref().map(|r| r.info.run_name.clone()),
        experiment_id: run.as_ref().map(|r| r.info.experiment_id.clone()),
        params,
        metrics,
        datasets,
        intended_use,
        limitations,
        fairness,
        missing,
    })
}

/// A time in milliseconds as `YYYY-MM-DD HH:MM UTC`.
fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// A rate as a number with three decimals.
fn rate(x: f64) -> String {
    format!("{x:.3}")
}

fn ratio(x: Option<f64>) -> String {
    x.map_or_else(|| "undefined (0 / 0)".to_string(), rate)
}

/// A Markdown table cell: one line, pipes escaped.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// A group's cells: its value, rows, positives and four rates.
fn group_cells(g: &GroupRates) -> [String; 7] {
    [
        g.group.clone(),
        g.count.to_string(),
        g.positives.to_string(),
        rate(g.selection_rate),
        rate(g.true_positive_rate),
        rate(g.false_positive_rate),
        rate(g.accuracy),
    ]
}

/// The between-group figures, named.
fn figures(r: &Rates) -> [(&'static str, String); 4] {
    [
        (
            "Demographic parity difference",
            rate(r.demographic_parity_difference),
        ),
        (
            "Demographic parity ratio",
            ratio(r.demographic_parity_ratio),
        ),
        (
            "Equalized odds difference",
            rate(r.equalized_odds_difference),
        ),
        ("Equalized odds ratio", ratio(r.equalized_odds_ratio)),
    ]
}

/// A dataset's cells: name, context, version, content hash, rows, validation.
fn dataset_cells(d: &CardDataset) -> [String; 6] {
    [
        d.name.clone(),
        d.context.clone().unwrap_or_default(),
        d.version
            .clone()
            .unwrap_or_else(|| "not a keel dataset".to_string()),
        d.hash.clone().unwrap_or_else(|| d.digest.clone()),
        d.rows.map(|r| r.to_string()).unwrap_or_default(),
        d.validation.clone().unwrap_or_default(),
    ]
}

impl ModelCard {
    /// The overview's rows (label and value), those with a value.
    fn overview(&self) -> Vec<(&'static str, String)> {
        let aliases: Vec<String> = self.aliases.iter().map(|a| format!("@{a}")).collect();
        let run = match &self.run_name {
            Some(n) if !n.is_empty() => format!("{n} ({})", self.run_id),
            _ => self.run_id.clone(),
        };
        [
            ("Registered", when(self.created)),
            ("Registered by", self.creator.clone()),
            ("Aliases", aliases.join(", ")),
            ("Status", self.status.clone()),
            ("Source", self.source.clone()),
            ("Run", run),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
    }

    /// The parameters and the metrics, each as (name, value) rows.
    fn logged(&self) -> [(&'static str, Vec<(String, String)>); 2] {
        let metrics = self
            .metrics
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect();
        [("Parameters", self.params.clone()), ("Metrics", metrics)]
    }

    /// The card as Markdown.
    pub fn markdown(&self) -> String {
        use std::fmt::Write;
        let mut m = String::new();
        let _ = writeln!(m, "# Model card: {} version {}\n", self.name, self.version);
        if !self.description.is_empty() {
            let _ = writeln!(m, "{}\n", self.description);
        }
        let _ = writeln!(m, "| | |\n|---|---|");
        for (k, v) in self.overview() {
            let _ = writeln!(m, "| {k} | {} |", cell(&v));
        }
        let written = |t: &Option<String>| {
            t.clone()
                .unwrap_or_else(|| "_Not written yet._".to_string())
        };
        let _ = writeln!(m, "\n## Intended use\n\n{}\n", written(&self.intended_use));
        let _ = writeln!(m, "## Limitations\n\n{}\n", written(&self.limitations));
        let _ = writeln!(m, "## Training data\n");
        if self.datasets.is_empty() {
            let _ = writeln!(m, "_The run names no dataset._\n");
        } else {
            let _ = writeln!(
                m,
                "| Dataset | Context | Version | Content hash | Rows | Validation |\n|---|---|---|---|---:|---|"
            );
            for d in &self.datasets {
                let c = dataset_cells(d);
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | `{}` | {} | {} |",
                    cell(&c[0]),
                    cell(&c[1]),
                    cell(&c[2]),
                    cell(&c[3]),
                    c[4],
                    cell(&c[5])
                );
            }
            let _ = writeln!(m);
        }
        for (title, rows) in self.logged() {
            let _ = writeln!(m, "## {title}\n");
            if rows.is_empty() {
                let _ = writeln!(m, "_None logged._\n");
                continue;
            }
            let _ = writeln!(m, "| Name | Value |\n|---|---|");
            for (k, v) in rows {
                let _ = writeln!(m, "| {} | {} |", cell(&k), cell(&v));
            }
            let _ = writeln!(m);
        }
        let _ = writeln!(m, "## Fairness\n");
        if self.fairness.is_empty() {
            let _ = writeln!(m, "_Not evaluated._\n");
        }
        for f in &self.fairness {
            let _ = writeln!(
                m,
                "### By `{}`\n\nOn {} (`{}`, {} rows, {}); outcome `{}`, positive label `{}`.\n",
                f.sensitive,
                f.dataset,
                f.dataset_hash,
                f.rates.overall.count,
                when(f.time),
                f.target,
                f.positive_label
            );
            let _ = writeln!(
                m,
                "| Group | Rows | Positives | Selection rate | True positive rate | False positive rate | Accuracy |\n|---|---:|---:|---:|---:|---:|---:|"
            );
            for g in f.rates.groups.iter().chain([&f.rates.overall]) {
                let c = group_cells(g);
                let _ = writeln!(m, "| {} | {} |", cell(&c[0]), c[1..].join(" | "));
            }
            let _ = writeln!(m);
            for (name, value) in figures(&f.rates) {
                let _ = writeln!(m, "- {name}: {value}");
            }
            let _ = writeln!(m);
        }
        if !self.missing.is_empty() {
            let _ = writeln!(m, "## Not yet on this card\n");
            for x in &self.missing {
                let _ = writeln!(m, "- {x}");
            }
        }
        m
    }

    /// The card as a standalone HTML page (every text escaped; no script), with a bar chart
    /// of each fairness evaluation's rates per group.
    pub fn html(&self) -> String {
        use std::fmt::Write;
        let e = escape;
        let mut h = String::new();
        let title = format!("Model card: {} version {}", self.name, self.version);
        let _ = write!(
            h,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
            e(&title),
            e(&title)
        );
        if !self.description.is_empty() {
            let _ = write!(h, "<p class=\"text\">{}</p>", e(&self.description));
        }
        let _ = write!(h, "<table class=\"kv\">");
        for (k, v) in self.overview() {
            let _ = write!(h, "<tr><th>{k}</th><td>{}</td></tr>", e(&v));
        }
        let _ = write!(h, "</table>");
        for (id, title, text) in [
            ("intended-use", "Intended use", &self.intended_use),
            ("limitations", "Limitations", &self.limitations),
        ] {
            let _ = write!(h, "<h2>{title}</h2>");
            match text {
                Some(t) => {
                    let _ = write!(h, "<p class=\"text\" id=\"{id}\">{}</p>", e(t));
                }
                None => {
                    let _ = write!(h, "<p class=\"missing\" id=\"{id}\">Not written yet.</p>");
                }
            }
        }
        let _ = write!(h, "<h2>Training data</h2>");
        if self.datasets.is_empty() {
            let _ = write!(h, "<p class=\"missing\">The run names no dataset.</p>");
        } else {
            let _ = write!(
                h,
                "<table id=\"datasets\"><tr><th>Dataset</th><th>Context</th><th>Version</th><th>Content hash</th><th>Rows</th><th>Validation</th></tr>"
            );
            for d in &self.datasets {
                let c = dataset_cells(d).map(|x| e(&x));
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"n\">{}</td><td>{}</td></tr>",
                    c[0], c[1], c[2], c[3], c[4], c[5]
                );
            }
            let _ = write!(h, "</table>");
        }
        for (title, rows) in self.logged() {
            let _ = write!(h, "<h2>{title}</h2>");
            if rows.is_empty() {
                let _ = write!(h, "<p class=\"missing\">None logged.</p>");
                continue;
            }
            let _ = write!(h, "<table>");
            for (k, v) in rows {
                let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", e(&k), e(&v));
            }
            let _ = write!(h, "</table>");
        }
        let _ = write!(h, "<h2>Fairness</h2>");
        if self.fairness.is_empty() {
            let _ = write!(h, "<p class=\"missing\">Not evaluated.</p>");
        }
        for f in &self.fairness {
            let _ = write!(
                h,
                "<section class=\"fairness\"><h3>By <code>{}</code></h3><p>On {} (<code>{}</code>, {} rows, {}); outcome <code>{}</code>, positive label <code>{}</code>.</p>",
                e(&f.sensitive),
                e(&f.dataset),
                e(&f.dataset_hash),
                f.rates.overall.count,
                when(f.time),
                e(&f.target),
                e(&f.positive_label)
            );
            let _ = write!(h, "{}", bars(f));
            let _ = write!(
                h,
                "<table><tr><th>Group</th><th>Rows</th><th>Positives</th><th>Selection rate</th><th>True positive rate</th><th>False positive rate</th><th>Accuracy</th></tr>"
            );
            for g in f.rates.groups.iter().chain([&f.rates.overall]) {
                let c = group_cells(g);
                let _ = write!(h, "<tr><td>{}</td>", e(&c[0]));
                for x in &c[1..] {
                    let _ = write!(h, "<td class=\"n\">{x}</td>");
                }
                let _ = write!(h, "</tr>");
            }
            let _ = write!(h, "</table><table class=\"kv\">");
            for (name, value) in figures(&f.rates) {
                let _ = write!(h, "<tr><th>{name}</th><td>{value}</td></tr>");
            }
            let _ = write!(h, "</table></section>");
        }
        if !self.missing.is_empty() {
            let _ = write!(h, "<h2>Not yet on this card</h2><ul class=\"missing\">");
            for x in &self.missing {
                let _ = write!(h, "<li>{}</li>", e(x));
            }
            let _ = write!(h, "</ul>");
        }
        h.push_str("</body></html>\n");
        h
    }
}

const STYLE: &str = "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}.kv th{background:#f6f8fa}.text{white-space:pre-wrap}.missing{color:#8a6d00}code{font-size:90%}svg text{font-size:12px}";

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A horizontal bar chart (SVG) of each group's selection, true positive and false positive
/// rates.
fn bars(f: &Fairness) -> String {
    use std::fmt::Write;
    const SERIES: [(&str, &str); 3] = [
        ("selection rate", "#0969da"),
        ("true positive rate", "#1a7f37"),
        ("false positive rate", "#cf222e"),
    ];
    let (label_w, bar_w, row_h) = (140.0, 360.0, 14.0);
    let groups = &f.rates.groups;
    let height = groups.len() as f64 * (row_h * 3.0 + 10.0) + 30.0;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg role=\"img\" aria-label=\"Rates per group of {}\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\">",
        escape(&f.sensitive),
        label_w + bar_w + 60.0,
        label_w + bar_w + 60.0
    );
    for (k, (name, color)) in SERIES.iter().enumerate() {
        let x = k as f64 * 170.0;
        let _ = write!(
            s,
            "<rect x=\"{x}\" y=\"4\" width=\"10\" height=\"10\" fill=\"{color}\"/><text x=\"{}\" y=\"13\">{name}</text>",
            x + 14.0
        );
    }
    for (i, g) in groups.iter().enumerate() {
        let y0 = 24.0 + i as f64 * (row_h * 3.0 + 10.0);
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\">{}</text>",
            y0 + row_h * 1.8,
            escape(&g.group.chars().take(20).collect::<String>())
        );
        let values = [
            g.selection_rate,
            g.true_positive_rate,
            g.false_positive_rate,
        ];
        for (k, (v, (_, color))) in values.iter().zip(SERIES).enumerate() {
            let y = y0 + k as f64 * row_h;
            let _ = write!(
                s,
                "<rect x=\"{label_w}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{}\">{}</text>",
                v.clamp(0.0, 1.0) * bar_w,
                row_h - 2.0,
                label_w + v.clamp(0.0, 1.0) * bar_w + 4.0,
                y + row_h - 3.0,
                rate(*v)
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(951_827_696_000), "2000-02-29 12:34 UTC");
        assert_eq!(when(1_798_675_200_000), "2026-12-31 00:00 UTC");
    }

    #[test]
    fn text_is_escaped_in_html_and_cells() {
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }
}
