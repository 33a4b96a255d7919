//! Compiles search ASTs to parameterised SQL for either backend. Values are always bound, never
//! spliced; only fixed column names and operators come from keel's own tables below. The
//! dialect decides the placeholder syntax (`?` or `$n`) and how `LIKE`/`ILIKE` are spelled.

use keel_core::filter::{Clause, Op, Order, Value, experiments, logged_models, registry, runs};

pub(crate) use crate::db::{Bind, Dialect, Sql};

/// Converts a SQL `LIKE` pattern to a case-sensitive `GLOB` pattern.
pub(crate) fn like_to_glob(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    for c in pattern.chars() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

fn sql_op(op: Op) -> &'static str {
    match op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
        _ => "=",
    }
}

/// Appends `<expr> <op> <value>` for a string or numeric comparison on a column expression.
fn compare(sql: &mut Sql, expr: &str, op: Op, value: &Value) {
    match (op, value) {
        // A pattern has `%` and `_` and no escape character on either engine: PostgreSQL would
        // otherwise read a backslash as one, where SQLite's `GLOB` and `LIKE` take it as is.
        (Op::Like, Value::Str(s)) if sql.dialect == Dialect::Postgres => {
            sql.push(expr)
                .push(" LIKE ")
                .bind_str(s.clone())
                .push(" ESCAPE ''");
        }
        (Op::ILike, Value::Str(s)) if sql.dialect == Dialect::Postgres => {
            sql.push(expr)
                .push(" ILIKE ")
                .bind_str(s.clone())
                .push(" ESCAPE ''");
        }
        (Op::Like, Value::Str(s)) => {
            sql.push(expr).push(" GLOB ").bind_str(like_to_glob(s));
        }
        (Op::ILike, Value::Str(s)) => {
            sql.push("LOWER(")
                .push(expr)
                .push(") LIKE LOWER(")
                .bind_str(s.clone())
                .push(")");
        }
        (Op::In | Op::NotIn, Value::List(items)) => {
            sql.push(expr)
                .push(if op == Op::In { " IN " } else { " NOT IN " });
            sql.bind_list(items.iter().cloned().map(Bind::Str));
        }
        (_, Value::Number(n)) => {
            sql.push(expr)
                .push(" ")
                .push(sql_op(op))
                .push(" ")
                .bind(Bind::F64(*n));
        }
        (_, Value::Str(s)) => {
            sql.push(expr)
                .push(" ")
                .push(sql_op(op))
                .push(" ")
                .bind_str(s.clone());
        }
        _ => {
            sql.push("0");
        }
    }
}

/// `EXISTS`/`NOT EXISTS` over a key/value table for params and tags.
fn kv_clause(
    sql: &mut Sql,
    table: &str,
    owner_col: &str,
    owner_expr: &str,
    key: &str,
    op: Op,
    value: &Value,
) {
    match op {
        Op::IsNull => {
            sql.push("NOT EXISTS (SELECT 1 FROM ")
                .push(table)
                .push(" kv WHERE kv.")
                .push(owner_col)
                .push(" = ")
                .push(owner_expr);
            sql.push(" AND kv.key = ").bind_str(key).push(")");
        }
        _ => {
            sql.push("EXISTS (SELECT 1 FROM ")
                .push(table)
                .push(" kv WHERE kv.")
                .push(owner_col)
                .push(" = ")
                .push(owner_expr);
            sql.push(" AND kv.key = ").bind_str(key);
            if op != Op::IsNotNull {
                sql.push(" AND ");
                compare(sql, "kv.value", op, value);
            }
            sql.push(")");
        }
    }
}

fn run_attr_column(a: runs::Attr) -> &'static str {
    match a {
        runs::Attr::RunId => "r.run_uuid",
        runs::Attr::RunName => "r.name",
        runs::Attr::UserId => "r.user_id",
        runs::Attr::Status => "r.status",
        runs::Attr::ArtifactUri => "r.artifact_uri",
        runs::Attr::StartTime => "r.start_time",
        runs::Attr::EndTime => "r.end_time",
        runs::Attr::ExperimentId => "r.experiment_id",
    }
}

/// Appends ` AND <clause>` for each run-search clause except metric comparisons, which
/// [`run_search`] turns into joins.
fn run_where(sql: &mut Sql, clauses: &[Clause<runs::Key>]) {
    for c in clauses {
        match &c.key {
            runs::Key::Metric(_) => continue,
            runs::Key::Param(k) => {
                sql.push(" AND ");
                kv_clause(sql, "params", "run_uuid", "r.run_uuid", k, c.op, &c.value)
            }
            runs::Key::Tag(k) => {
                sql.push(" AND ");
                kv_clause(sql, "tags", "run_uuid", "r.run_uuid", k, c.op, &c.value)
            }
            runs::Key::Attr(a) => {
                sql.push(" AND ");
                compare(sql, run_attr_column(*a), c.op, &c.value)
            }
            runs::Key::Dataset(f) => {
                sql.push(" AND ");
                let (from, col) = match f {
                    runs::DatasetField::Name => (
                        "run_dataset_inputs i JOIN datasets d ON d.dataset_uuid = i.dataset_uuid",
                        "d.name",
                    ),
                    runs::DatasetField::Digest => (
                        "run_dataset_inputs i JOIN datasets d ON d.dataset_uuid = i.dataset_uuid",
                        "d.digest",
                    ),
                    runs::DatasetField::Context => ("run_dataset_input_tags i", "i.value"),
                };
                sql.push("EXISTS (SELECT 1 FROM ")
                    .push(from)
                    .push(" WHERE i.run_uuid = r.run_uuid AND ");
                if *f == runs::DatasetField::Context {
                    sql.push("i.key = 'mlflow.data.context' AND ");
                }
                compare(sql, col, c.op, &c.value);
                sql.push(")");
            }
        }
    }
}

/// The id query of a run search: `SELECT r.run_uuid FROM runs r ... ORDER BY ...` (paged by
/// `page_ids`).
///
/// Metric comparisons become inner joins on `latest_metrics` (so SQLite may drive the search from
/// the `(key_id, value)` index), and an order on a metric that is also filtered reuses that join.
/// Default order: `start_time DESC, run_uuid`; missing and NaN values sort last.
/// `metric_ids`, when given, holds the ids of the metric names the search mentions (a name it
/// lacks matches nothing); without it each name is looked up in a subquery.
pub(crate) fn run_search(
    dialect: Dialect,
    exp_ids: &[i64],
    view: keel_core::entities::ViewType,
    filter: &[Clause<runs::Key>],
    order: &[Order<runs::Key>],
    metric_ids: Option<&std::collections::HashMap<String, i64>>,
) -> Sql {
    let key_ref = |sql: &mut Sql, name: &str| match metric_ids {
        Some(ids) => {
            sql.bind(Bind::I64(ids.get(name).copied().unwrap_or(-1)));
        }
        None => {
            sql.push("(SELECT key_id FROM metric_keys WHERE name = ")
                .bind_str(name.to_string())
                .push(")");
        }
    };
    let mut sql = Sql::new(dialect);
    sql.push("SELECT r.run_uuid FROM runs r");
    let mut metric_alias: Vec<(&str, String)> = Vec::new();
    for (i, c) in filter.iter().enumerate() {
        if let runs::Key::Metric(k) = &c.key {
            let a = format!("f{i}");
            sql.push(&format!(
                " JOIN latest_metrics {a} ON {a}.run_key = r.run_key AND {a}.key_id = "
            ));
            key_ref(&mut sql, k);
            sql.push(&format!(" AND {a}.is_nan = 0 AND "));
            compare(&mut sql, &format!("{a}.value"), c.op, &c.value);
            if !metric_alias.iter().any(|(key, _)| key == k) {
                metric_alias.push((k, a));
            }
        }
    }
    let mut terms = Vec::new();
    for (i, o) in order.iter().enumerate() {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        match &o.key {
            runs::Key::Metric(k) => match metric_alias.iter().find(|(key, _)| key == k) {
                // Filtered metrics are present and not NaN: no "missing last" term needed.
                Some((_, a)) => terms.push(format!("{a}.value {dir}")),
                None => {
                    let a = format!("o{i}");
                    sql.push(&format!(
                        " LEFT JOIN latest_metrics {a} ON {a}.run_key = r.run_key AND {a}.key_id = "
                    ));
                    key_ref(&mut sql, k);
                    terms.push(format!("({a}.value IS NULL OR {a}.is_nan = 1)"));
                    terms.push(format!("{a}.value {dir}"));
                }
            },
            runs::Key::Param(k) | runs::Key::Tag(k) => {
                let table = if matches!(o.key, runs::Key::Param(_)) {
                    "params"
                } else {
                    "tags"
                };
                let a = format!("o{i}");
                sql.push(&format!(
                    " LEFT JOIN {table} {a} ON {a}.run_uuid = r.run_uuid AND {a}.key = "
                ))
                .bind_str(k.clone());
                terms.push(format!("({a}.value IS NULL)"));
                terms.push(format!("{a}.value {dir}"));
            }
            runs::Key::Attr(attr) => {
                let col = run_attr_column(*attr);
                // Missing values sort last; only end_time can be missing (the other columns
                // are NOT NULL, and a constant term would keep an index from giving the
                // order: 100,000 runs sorted instead of a page read in index order).
                if matches!(attr, runs::Attr::EndTime) {
                    terms.push(format!("({col} IS NULL)"));
                }
                terms.push(format!("{col} {dir}"));
            }
            runs::Key::Dataset(_) => {}
        }
    }
    terms.push("r.start_time DESC".into());
    terms.push("r.run_uuid ASC".into());
    sql.push(" WHERE r.experiment_id IN ");
    sql.bind_list(exp_ids.iter().map(|i| Bind::I64(*i)));
    match view {
        keel_core::entities::ViewType::ActiveOnly => sql.push(" AND r.lifecycle_stage = 'active'"),
        keel_core::entities::ViewType::DeletedOnly => {
            sql.push(" AND r.lifecycle_stage = 'deleted'")
        }
        keel_core::entities::ViewType::All => sql.push(""),
    };
    run_where(&mut sql, filter);
    sql.push(" ORDER BY ").push(&terms.join(", "));
    sql
}

/// The metric names a run search filters or orders on.
pub(crate) fn metric_names<'a>(
    filter: &'a [Clause<runs::Key>],
    order: &'a [Order<runs::Key>],
) -> Vec<&'a str> {
    let mut names: Vec<&str> = filter
        .iter()
        .map(|c| &c.key)
        .chain(order.iter().map(|o| &o.key))
        .filter_map(|k| match k {
            runs::Key::Metric(m) => Some(m.as_str()),
            _ => None,
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// WHERE clauses for experiment search over `experiments e`.
pub(crate) fn experiment_where(sql: &mut Sql, clauses: &[Clause<experiments::Key>]) {
    for c in clauses {
        sql.push(" AND ");
        match &c.key {
            experiments::Key::Name => compare(sql, "e.name", c.op, &c.value),
            experiments::Key::CreationTime => compare(sql, "e.creation_time", c.op, &c.value),
            experiments::Key::LastUpdateTime => compare(sql, "e.last_update_time", c.op, &c.value),
            experiments::Key::Tag(k) => kv_clause(
                sql,
                "experiment_tags",
                "experiment_id",
                "e.experiment_id",
                k,
                c.op,
                &c.value,
            ),
        }
    }
}

pub(crate) fn experiment_order(order: &[Order<experiments::Key>]) -> String {
    let mut terms: Vec<String> = order
        .iter()
        .filter_map(|o| {
            let col = match o.key {
                experiments::Key::Name => "e.name",
                experiments::Key::CreationTime => "e.creation_time",
                experiments::Key::LastUpdateTime => "e.last_update_time",
                experiments::Key::Tag(_) => return None,
            };
            Some(format!(
                "{col} {}",
                if o.ascending { "ASC" } else { "DESC" }
            ))
        })
        .collect();
    // MLflow's order: by default newest first then by id; after an explicit order, id descending.
    if terms.is_empty() {
        terms.push("e.creation_time DESC".into());
        terms.push("e.experiment_id ASC".into());
    } else {
        terms.push("e.experiment_id DESC".into());
    }
    terms.join(", ")
}

/// The tag that marks prompts in the registry: searches return models unless asked for prompts.
const PROMPT_TAG: &str = "mlflow.prompt.is_prompt";

/// Whether the clauses ask for prompts (`is_prompt = 'true'` or `!= 'false'`).
fn wants_prompts(clauses: &[Clause<registry::Key>]) -> bool {
    clauses.iter().any(|c| match (&c.key, c.op, &c.value) {
        (registry::Key::Tag(k), Op::Eq, Value::Str(v)) if k == PROMPT_TAG => {
            v.eq_ignore_ascii_case("true")
        }
        (registry::Key::Tag(k), Op::Ne, Value::Str(v)) if k == PROMPT_TAG => {
            v.eq_ignore_ascii_case("false")
        }
        _ => false,
    })
}

/// WHERE clauses for registered-model (`m`) or model-version (`v`) search. Prompts (models
/// tagged `mlflow.prompt.is_prompt = 'true'`) are kept apart from models, as MLflow does.
pub(crate) fn registry_where(sql: &mut Sql, clauses: &[Clause<registry::Key>], versions: bool) {
    let (alias, tag_table) = if versions {
        ("v", "model_version_tags")
    } else {
        ("m", "registered_model_tags")
    };
    sql.push(if wants_prompts(clauses) {
        " AND EXISTS"
    } else {
        " AND NOT EXISTS"
    });
    sql.push(&format!(
        " (SELECT 1 FROM {tag_table} pt WHERE pt.name = {alias}.name AND pt.key = "
    ));
    sql.bind_str(PROMPT_TAG)
        .push(" AND LOWER(pt.value) = 'true')");
    let clauses = clauses
        .iter()
        .filter(|c| !matches!(&c.key, registry::Key::Tag(k) if k == PROMPT_TAG));
    for c in clauses {
        sql.push(" AND ");
        match &c.key {
            registry::Key::Name => compare(sql, &format!("{alias}.name"), c.op, &c.value),
            registry::Key::RunId => compare(sql, "v.run_id", c.op, &c.value),
            registry::Key::SourcePath => compare(sql, "v.source", c.op, &c.value),
            registry::Key::VersionNumber => compare(sql, "v.version", c.op, &c.value),
            registry::Key::CreationTimestamp => {
                compare(sql, &format!("{alias}.creation_time"), c.op, &c.value)
            }
            registry::Key::LastUpdatedTimestamp => {
                compare(sql, &format!("{alias}.last_updated_time"), c.op, &c.value)
            }
            registry::Key::Tag(k) => {
                if versions {
                    match c.op {
                        Op::IsNull => sql.push("NOT "),
                        _ => sql.push(""),
                    };
                    sql.push("EXISTS (SELECT 1 FROM model_version_tags kv WHERE kv.name = v.name AND kv.version = v.version AND kv.key = ").bind_str(k.clone());
                    if !matches!(c.op, Op::IsNull | Op::IsNotNull) {
                        sql.push(" AND ");
                        compare(sql, "kv.value", c.op, &c.value);
                    }
                    sql.push(")");
                } else {
                    kv_clause(sql, tag_table, "name", "m.name", k, c.op, &c.value);
                }
            }
        }
    }
}

pub(crate) fn registry_order(order: &[Order<registry::Key>], versions: bool) -> String {
    let alias = if versions { "v" } else { "m" };
    let mut terms: Vec<String> = order
        .iter()
        .filter_map(|o| {
            let col = match o.key {
                registry::Key::Name => format!("{alias}.name"),
                registry::Key::VersionNumber => "v.version".into(),
                registry::Key::CreationTimestamp => format!("{alias}.creation_time"),
                registry::Key::LastUpdatedTimestamp => format!("{alias}.last_updated_time"),
                _ => return None,
            };
            Some(format!(
                "{col} {}",
                if o.ascending { "ASC" } else { "DESC" }
            ))
        })
        .collect();
    if versions {
        // MLflow's order: the latest update first by default; then, unless ordered by them
        // already, name ascending and the newest version first.
        if terms.is_empty() {
            terms.push("v.last_updated_time DESC".into());
        }
        let given = |key: registry::Key| order.iter().any(|o| o.key == key);
        if !given(registry::Key::Name) {
            terms.push("v.name ASC".into());
        }
        if !given(registry::Key::VersionNumber) {
            terms.push("v.version DESC".into());
        }
    } else {
        terms.push("m.name ASC".into());
    }
    terms.join(", ")
}

fn logged_model_column(k: &logged_models::Key) -> Option<&'static str> {
    Some(match k {
        logged_models::Key::ModelId => "lm.model_id",
        logged_models::Key::Name => "lm.name",
        logged_models::Key::Status => "lm.status",
        logged_models::Key::ModelType => "lm.model_type",
        logged_models::Key::SourceRunId => "lm.source_run_id",
        logged_models::Key::CreationTimestamp => "lm.creation_timestamp_ms",
        logged_models::Key::LastUpdatedTimestamp => "lm.last_updated_timestamp_ms",
        _ => return None,
    })
}

/// ` AND (dataset = ... OR ...)` over the metric rows `mm`, for a `datasets` filter.
fn dataset_condition(sql: &mut Sql, datasets: &[keel_core::store::DatasetFilter]) {
    if datasets.is_empty() {
        return;
    }
    sql.push(" AND (");
    for (i, d) in datasets.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(mm.dataset_name = ").bind_str(d.name.clone());
        if let Some(digest) = &d.digest {
            sql.push(" AND mm.dataset_digest = ")
                .bind_str(digest.clone());
        }
        sql.push(")");
    }
    sql.push(")");
}

/// The WHERE terms of a logged-model search: the filter's clauses and, as MLflow has it,
/// `datasets`: metric clauses hold on those datasets' metrics, and without a metric clause a
/// model needs some metric on one of them.
pub(crate) fn logged_model_where(
    sql: &mut Sql,
    clauses: &[Clause<logged_models::Key>],
    datasets: &[keel_core::store::DatasetFilter],
) {
    let metric_clauses = clauses
        .iter()
        .any(|c| matches!(c.key, logged_models::Key::Metric(_)));
    if !datasets.is_empty() && !metric_clauses {
        sql.push(" AND EXISTS (SELECT 1 FROM metrics mm WHERE mm.model_id = lm.model_id");
        dataset_condition(sql, datasets);
        sql.push(")");
    }
    for c in clauses {
        sql.push(" AND ");
        match &c.key {
            logged_models::Key::Metric(k) => {
                sql.push("EXISTS (SELECT 1 FROM metrics mm WHERE mm.model_id = lm.model_id AND mm.key_id = (SELECT key_id FROM metric_keys WHERE name = ").bind_str(k.clone()).push(")");
                sql.push(" AND mm.is_nan = 0 AND ");
                compare(sql, "mm.value", c.op, &c.value);
                dataset_condition(sql, datasets);
                sql.push(")");
            }
            logged_models::Key::Param(k) => kv_clause(
                sql,
                "logged_model_params",
                "model_id",
                "lm.model_id",
                k,
                c.op,
                &c.value,
            ),
            logged_models::Key::Tag(k) => kv_clause(
                sql,
                "logged_model_tags",
                "model_id",
                "lm.model_id",
                k,
                c.op,
                &c.value,
            ),
            other => {
                let col = logged_model_column(other).unwrap_or("lm.model_id");
                // Statuses are stored by proto name; accept the short forms too.
                let value = match (other, &c.value) {
                    (logged_models::Key::Status, Value::Str(s)) => Value::Str(
                        keel_core::entities::LoggedModelStatus::parse(s)
                            .map(|st| st.as_str().to_string())
                            .unwrap_or_else(|| s.clone()),
                    ),
                    (_, v) => v.clone(),
                };
                compare(sql, col, c.op, &value);
            }
        }
    }
}

pub(crate) fn logged_model_order(
    dialect: Dialect,
    order: &[Order<logged_models::Key>],
) -> (Sql, String) {
    let mut joins = Sql::new(dialect);
    let mut terms = Vec::new();
    for (i, o) in order.iter().enumerate() {
        let dir = if o.ascending { "ASC" } else { "DESC" };
        match &o.key {
            logged_models::Key::Metric(k) => {
                let a = format!("o{i}");
                joins.push(" LEFT JOIN (SELECT model_id, MAX(value) AS value FROM metrics WHERE model_id IS NOT NULL AND key_id = (SELECT key_id FROM metric_keys WHERE name = ");
                joins.bind_str(k.clone());
                joins.push(&format!(
                    ") GROUP BY model_id) {a} ON {a}.model_id = lm.model_id"
                ));
                terms.push(format!("({a}.value IS NULL)"));
                terms.push(format!("{a}.value {dir}"));
            }
            logged_models::Key::Param(k) | logged_models::Key::Tag(k) => {
                let table = if matches!(o.key, logged_models::Key::Param(_)) {
                    "logged_model_params"
                } else {
                    "logged_model_tags"
                };
                let a = format!("o{i}");
                joins
                    .push(&format!(
                        " LEFT JOIN {table} {a} ON {a}.model_id = lm.model_id AND {a}.key = "
                    ))
                    .bind_str(k.clone());
                terms.push(format!("({a}.value IS NULL)"));
                terms.push(format!("{a}.value {dir}"));
            }
            other => {
                if let Some(col) = logged_model_column(other) {
                    terms.push(format!("{col} {dir}"));
                }
            }
        }
    }
    terms.push("lm.creation_timestamp_ms DESC".into());
    terms.push("lm.model_id ASC".into());
    (joins, terms.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_become_globs() {
        assert_eq!(like_to_glob("a%b_c"), "a*b?c");
        assert_eq!(like_to_glob("x*y?[z"), "x[*]y[?][[]z");
    }

    #[test]
    fn each_dialect_gets_its_placeholders_and_like() {
        let filter = keel_core::filter::runs::parse_filter(
            "params.p LIKE 'a%' and tags.t ILIKE 'B%' and metrics.m > 0.5",
        )
        .unwrap();
        let order = [keel_core::filter::runs::parse_order("metrics.m DESC").unwrap()];
        let lite = run_search(
            Dialect::Sqlite,
            &[1],
            Default::default(),
            &filter,
            &order,
            None,
        );
        let pg = run_search(
            Dialect::Postgres,
            &[1],
            Default::default(),
            &filter,
            &order,
            None,
        );
        assert_eq!(lite.binds.len(), pg.binds.len());
        assert!(!lite.text.contains('$') && lite.text.contains(" GLOB "));
        assert!(
            pg.text.contains(" LIKE ") && pg.text.contains(" ILIKE ") && !pg.text.contains('?')
        );
        let numbered: Vec<String> = (1..=pg.binds.len()).map(|i| format!("${i}")).collect();
        for n in &numbered {
            assert!(pg.text.contains(n.as_str()), "{n} missing in {}", pg.text);
        }
        assert_eq!(lite.text.matches('?').count(), lite.binds.len());
    }
}
