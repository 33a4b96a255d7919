//! `keel import` and `keel export`: their arguments and summaries.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::args::LocalStores;
use crate::output;
use crate::stores::open_stores;
use crate::transfer::{self, Source};

#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["from_mlflow", "from"])))]
pub(crate) struct ImportArgs {
    /// The MLflow tracking server to copy from (http://host:port).
    #[arg(long = "from-mlflow", value_name = "URL")]
    pub(crate) from_mlflow: Option<String>,
    /// A folder written by `keel export`.
    #[arg(long, value_name = "DIR")]
    pub(crate) from: Option<PathBuf>,
    /// The stores to write.
    #[command(flatten)]
    pub(crate) stores: LocalStores,
    /// Records finished runs and models, so that an interrupted import resumes.
    #[arg(long, default_value = "keel-import.journal")]
    pub(crate) journal: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args)]
pub(crate) struct ExportArgs {
    /// The folder to write (new or empty).
    #[arg(long, value_name = "DIR")]
    pub(crate) to: PathBuf,
    /// The stores to read.
    #[command(flatten)]
    pub(crate) stores: LocalStores,
    /// Print the summary as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Prints a summary as a table or as one JSON object.
fn print_summary(rows: Vec<(&'static str, u64)>, as_json: bool, footer: String) {
    if as_json {
        let obj: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v)| (k.replace(' ', "_").replace(['(', ')'], ""), (*v).into()))
            .collect();
        println!("{}", serde_json::Value::Object(obj));
    } else {
        let mut t = output::table(&["what", "count"]);
        for (what, n) in rows {
            t.add_row(vec![what.to_string(), n.to_string()]);
        }
        println!("{t}");
        println!("{footer}");
    }
}

pub(crate) async fn import(a: ImportArgs) -> Result<()> {
    let src: Box<dyn Source> = match (&a.from_mlflow, &a.from) {
        (Some(url), _) => Box::new(transfer::MlflowSource::new(url)?),
        (None, Some(dir)) => Box::new(transfer::FolderSource::open(dir)?),
        (None, None) => anyhow::bail!("--from-mlflow URL or --from DIR is required"),
    };
    let (settings, target) = open_stores(&a.stores).await?;
    let started = std::time::Instant::now();
    let sum = transfer::copy_all(src.as_ref(), &target, &a.journal, a.json)
        .await
        .with_context(|| {
            format!(
                "import from {} stopped (run it again to resume)",
                src.describe()
            )
        })?;
    print_summary(
        sum.rows(),
        a.json,
        format!(
            "imported from {} into {} and {} in {:.1}s",
            src.describe(),
            settings.db,
            target.artifacts.root_uri(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}

pub(crate) async fn export(a: ExportArgs) -> Result<()> {
    let (settings, store) = open_stores(&a.stores).await?;
    let started = std::time::Instant::now();
    let sum = transfer::export(&store.meta, &store.artifacts, &a.to, a.json)
        .await
        .with_context(|| format!("export into {} failed", a.to.display()))?;
    print_summary(
        sum.export_rows(),
        a.json,
        format!(
            "exported {} and {} into {} in {:.1}s",
            settings.db,
            store.artifacts.root_uri(),
            a.to.display(),
            started.elapsed().as_secs_f64()
        ),
    );
    Ok(())
}
