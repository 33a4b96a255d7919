//! Models keel runs in Python: any MLflow `python_function` model, loaded with `mlflow.pyfunc`
//! by a pool of worker processes in the model's environment (`env.rs`), fed batches of rows as
//! Arrow over Unix sockets (`wire.rs`, `pool.rs`). Requests are checked against the model's
//! signature and batched by keel's front end exactly as for native models; only the model call
//! crosses into Python.

pub mod convert;
pub mod env;
pub mod pool;
pub mod wire;

use std::path::PathBuf;
use std::time::Duration;

use keel_core::table::{Columns, Values};
use keel_onnx::{Data, ElemType, Tensor};

pub use env::EnvManager;
use pool::{Launch, Pool, Scratch, Worker};

use crate::error::ServeError;
use crate::mlmodel::{ColumnSpec, MlModel, Signature, TensorSpec};
use crate::payload::{Input, NamedTensor, Output};
use crate::predictor::{
    Feed, check_missing, check_tensor_spec, frame_matrix, numpy_elem, text_kind, to_elem,
};

/// The worker program, written next to the workers' sockets when a pool starts.
const WORKER: &str = include_str!("worker.py");

/// How Python models are run.
#[derive(Clone, Debug)]
pub struct PythonOptions {
    /// Where the workers' Python comes from.
    pub env_manager: EnvManager,
    /// The interpreter (`local`) or the one environments are built from.
    pub python: Option<PathBuf>,
    /// Worker processes per model version.
    pub workers: usize,
    /// Where built environments are kept.
    pub env_cache: PathBuf,
    /// How long a worker may take to load the model.
    pub load_timeout: Duration,
    /// Whether scikit-learn, XGBoost and LightGBM models are converted to ONNX (and served
    /// natively when the conversion checks out).
    pub convert: bool,
    /// Where converted models and their verdicts are kept.
    pub convert_cache: PathBuf,
}

impl Default for PythonOptions {
    fn default() -> Self {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .unwrap_or_else(std::env::temp_dir);
        Self {
            env_manager: EnvManager::Local,
            python: None,
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            env_cache: cache.join("keel").join("envs"),
            load_timeout: Duration::from_secs(300),
            convert: true,
            convert_cache: cache.join("keel").join("converted"),
        }
    }
}

/// A `python_function` model served by worker processes.
pub struct PythonModel {
    pool: Pool,
    signature: Signature,
    outputs: Option<Signature>,
    /// The interpreter the workers run.
    pub python: PathBuf,
    _scratch: Scratch,
}

impl std::fmt::Debug for PythonModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonModel")
            .field("pool", &self.pool)
            .field("python", &self.python)
            .finish()
    }
}

impl PythonModel {
    /// Builds or finds the model's environment, starts its workers and waits until each has
    /// loaded the model. A model without an input signature is refused: keel checks every
    /// request against it before it reaches Python.
    pub async fn start(
        ml: &MlModel,
        python: PathBuf,
        options: &PythonOptions,
        timeout: Duration,
    ) -> Result<Self, ServeError> {
        let Some(signature) = ml.signature.clone() else {
            return Err(ServeError::Model(format!(
                "{}: the model has no signature; keel checks requests against one before they reach Python (log it with a signature or an input example)",
                ml.dir.join("MLmodel").display()
            )));
        };
        let scratch = Scratch::new()?;
        let script = scratch.path().join("worker.py");
        std::fs::write(&script, WORKER)
            .map_err(|e| ServeError::Model(format!("{}: {e}", script.display())))?;
        let model = std::fs::canonicalize(&ml.dir).unwrap_or_else(|_| ml.dir.clone());
        let launch = Launch {
            python: python.clone(),
            script,
            model,
            sockets: scratch.path().to_path_buf(),
            load_timeout: options.load_timeout,
        };
        let pool = Pool::start(launch, options.workers, timeout).await?;
        let model = Self {
            pool,
            signature,
            outputs: ml.outputs.clone(),
            python,
            _scratch: scratch,
        };
        model.answer_the_example(&ml.dir).await?;
        Ok(model)
    }

    /// Sends the model's serving input example (`serving_input_example.json`, which MLflow
    /// writes beside an input example) through keel's checks and a worker: a model that
    /// cannot answer it is not served. Without an example, a worker that loaded the model is
    /// the proof it is ready.
    async fn answer_the_example(&self, dir: &std::path::Path) -> Result<(), ServeError> {
        let path = dir.join("serving_input_example.json");
        let Ok(body) = std::fs::read(&path) else {
            return Ok(());
        };
        let input = match crate::mlflow::parse_json(&body, &crate::payload::ColumnNames::default())
        {
            Ok(input) => input,
            Err(e) => {
                tracing::debug!(example = %path.display(), error = %e, "an input example keel does not read; not sent");
                return Ok(());
            }
        };
        let failed = |e: ServeError| {
            ServeError::Model(format!(
                "{}: the model does not answer its own input example ({}): {e}",
                dir.display(),
                path.display()
            ))
        };
        let feed = self.prepare(input).map_err(failed)?;
        let worker = self.pool.checkout().await?;
        self.predict(worker, &feed).await.map_err(failed)?;
        Ok(())
    }

    /// The worker pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Whether the model takes named columns.
    pub fn takes_columns(&self) -> bool {
        matches!(self.signature, Signature::Columns(_))
    }

    /// Checks a request against the signature and converts it to the columns or tensors
    /// the workers receive. Errors are 400s naming the column or input.
    pub fn prepare(&self, input: Input) -> Result<Feed, ServeError> {
        match &self.signature {
            Signature::Columns(spec) => columns_feed(spec, input),
            Signature::Tensors(spec) => tensors_feed(spec, input),
        }
    }

    /// Runs a feed on a worker taken from the pool.
    pub async fn predict(&self, worker: Worker, feed: &Feed) -> Result<Output, ServeError> {
        let payload = match (feed, &self.signature) {
            (Feed::Columns(c), Signature::Columns(spec)) => wire::encode_columns(c, spec)?,
            (Feed::Tensors(t), Signature::Tensors(spec)) => {
                let names = tensor_names(spec);
                wire::encode_tensors(t, &names, spec.len() > 1 || spec[0].name.is_some())?
            }
            _ => {
                return Err(ServeError::Predict(
                    "the feed does not fit the model".into(),
                ));
            }
        };
        self.pool.predict(worker, &payload, feed.rows()).await
    }

    /// The inputs, as (name, Open Inference Protocol type, shape).
    pub fn describe_inputs(&self) -> Vec<(String, String, Vec<i64>)> {
        describe(&self.signature)
    }

    /// The outputs the signature declares, if it declares them.
    pub fn describe_outputs(&self) -> Vec<(String, String, Vec<i64>)> {
        self.outputs.as_ref().map(describe).unwrap_or_default()
    }
}

/// The tensors' names: the signature's, else `input` for a model's only tensor and
/// `input_<k>` for several.
fn tensor_names(spec: &[TensorSpec]) -> Vec<String> {
    spec.iter()
        .enumerate()
        .map(|(i, s)| match (&s.name, spec.len()) {
            (Some(name), _) => name.clone(),
            (None, 1) => "input".to_string(),
            (None, _) => format!("input_{i}"),
        })
        .collect()
}

fn describe(signature: &Signature) -> Vec<(String, String, Vec<i64>)> {
    match signature {
        Signature::Columns(spec) => spec
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let ty = match c.ty.as_str() {
                    "double" => "FP64",
                    "float" => "FP32",
                    "long" => "INT64",
                    "integer" => "INT32",
                    "boolean" => "BOOL",
                    _ => "BYTES",
                };
                let name = c.name.clone().unwrap_or_else(|| format!("column_{i}"));
                (name, ty.to_string(), vec![-1])
            })
            .collect(),
        Signature::Tensors(spec) => tensor_names(spec)
            .into_iter()
            .zip(spec)
            .map(|(name, s)| {
                let ty = numpy_elem(&s.dtype).map_or("BYTES", crate::predictor::v2_datatype);
                (name, ty.to_string(), s.shape.clone())
            })
            .collect(),
    }
}

/// A request as the signature's columns, in its order, each checked against its type.
fn columns_feed(spec: &[ColumnSpec], input: Input) -> Result<Feed, ServeError> {
    let cols = match input {
        Input::Frame(c) => c,
        Input::Table(t) => t.into_columns(),
        Input::Tensors(t) => tensors_as_columns(spec, t)?,
    };
    check_missing(spec, &cols)?;
    let mut names = Vec::with_capacity(spec.len());
    let mut values = Vec::with_capacity(spec.len());
    for c in spec {
        let Some(name) = c.name.as_deref() else {
            continue;
        };
        let Some(v) = cols.get(name) else {
            continue;
        };
        values.push(conform(name, &c.ty, v.clone())?);
        names.push(name.to_string());
    }
    Ok(Feed::Columns(Columns { names, values }))
}

/// A column's values checked against its MLflow type (integers whole and in range, booleans
/// as true/false, text for strings); a column of nulls takes any type.
fn conform(name: &str, ty: &str, v: Values) -> Result<Values, ServeError> {
    let rows = v.len();
    let bad = |got: &str| {
        ServeError::BadRequest(format!("column '{name}' must hold {ty} values, got {got}"))
    };
    match (ty, v) {
        ("double" | "float" | "long" | "integer", Values::Text(t))
            if t.iter().all(Option::is_none) =>
        {
            Ok(Values::Numbers(vec![None; rows]))
        }
        ("string" | "boolean" | "binary" | "datetime", Values::Numbers(n))
            if n.iter().all(Option::is_none) =>
        {
            Ok(Values::Text(vec![None; rows]))
        }
        ("double" | "float" | "long" | "integer", Values::Text(t)) => Err(bad(text_kind(&t))),
        ("long" | "integer", Values::Numbers(n)) => {
            let (lo, hi) = if ty == "integer" {
                (f64::from(i32::MIN), f64::from(i32::MAX))
            } else {
                (-9.007_199_254_740_992e15, 9.007_199_254_740_992e15)
            };
            if let Some(x) = n
                .iter()
                .flatten()
                .find(|x| x.fract() != 0.0 || **x < lo || **x > hi)
            {
                return Err(bad(&format!("{x}")));
            }
            Ok(Values::Numbers(n))
        }
        ("boolean", Values::Text(t)) => {
            if let Some(x) = t.iter().flatten().find(|x| *x != "true" && *x != "false") {
                return Err(bad(&format!("'{x}'")));
            }
            Ok(Values::Text(t))
        }
        ("boolean" | "string" | "binary", Values::Numbers(_)) => Err(bad("numbers")),
        (_, v) => Ok(v),
    }
}

/// Named one-dimensional tensors (`inputs: {"a": [...]}`) or one `[N, F]` matrix as the
/// signature's columns.
pub(crate) fn tensors_as_columns(
    spec: &[ColumnSpec],
    given: Vec<NamedTensor>,
) -> Result<Columns, ServeError> {
    let column = |t: Tensor| -> Values {
        match t.data {
            Data::String(s) => Values::Text(s.into_iter().map(Some).collect()),
            Data::Bool(b) => Values::Text(b.into_iter().map(|b| Some(b.to_string())).collect()),
            Data::Double(v) => {
                Values::Numbers(v.into_iter().map(|x| (!x.is_nan()).then_some(x)).collect())
            }
            Data::Float(v) => Values::Numbers(
                v.into_iter()
                    .map(|x| (!x.is_nan()).then_some(f64::from(x)))
                    .collect(),
            ),
            Data::Int64(v) => Values::Numbers(v.into_iter().map(|x| Some(x as f64)).collect()),
            Data::Int32(v) => Values::Numbers(v.into_iter().map(|x| Some(f64::from(x))).collect()),
        }
    };
    if let [NamedTensor { name: None, tensor }] = given.as_slice()
        && tensor.shape.len() == 2
    {
        let (rows, width) = tensor.rows_cols();
        if width != spec.len() || spec.iter().any(|c| c.name.is_none()) {
            return Err(ServeError::BadRequest(format!(
                "the model takes {} columns; the tensor has shape {:?}",
                spec.len(),
                tensor.shape
            )));
        }
        let mut names = Vec::with_capacity(width);
        let mut values = Vec::with_capacity(width);
        for (j, c) in spec.iter().enumerate() {
            let one = Tensor {
                shape: vec![rows],
                data: tensor.data.gather((0..rows).map(|i| i * width + j)),
            };
            names.push(c.name.clone().unwrap_or_default());
            values.push(column(one));
        }
        return Ok(Columns { names, values });
    }
    let mut names = Vec::with_capacity(given.len());
    let mut values = Vec::with_capacity(given.len());
    for t in given {
        let Some(name) = t.name else {
            return Err(ServeError::BadRequest(
                "this model takes named columns (dataframe_split, dataframe_records, CSV, or inputs as a dict of columns)".into(),
            ));
        };
        let per_row: usize = t.tensor.shape.iter().skip(1).product();
        if per_row != 1 {
            return Err(ServeError::BadRequest(format!(
                "input '{name}' has shape {:?}; this model takes one value per row and column",
                t.tensor.shape
            )));
        }
        names.push(name);
        values.push(column(t.tensor));
    }
    crate::payload::unique_names(names.iter().map(String::as_str))?;
    let rows = values.first().map_or(0, Values::len);
    if let Some((n, _)) = names.iter().zip(&values).find(|(_, v)| v.len() != rows) {
        return Err(ServeError::BadRequest(format!(
            "column '{n}' has a different number of rows than the others"
        )));
    }
    Ok(Columns { names, values })
}

/// A request as the signature's tensors, each checked against its shape and cast to its
/// dtype; a frame of numbers feeds a model of one tensor as its `[N, C]` matrix.
fn tensors_feed(spec: &[TensorSpec], input: Input) -> Result<Feed, ServeError> {
    let names = tensor_names(spec);
    let given = match input {
        Input::Tensors(t) => t,
        frame => {
            let [s] = spec else {
                return Err(ServeError::BadRequest(format!(
                    "this model takes the tensors {}; send them as inputs or instances",
                    names.join(", ")
                )));
            };
            let cols = match frame {
                Input::Frame(c) => c,
                Input::Table(t) => t.into_columns(),
                Input::Tensors(_) => unreachable!("matched above"),
            };
            let elem = numpy_elem(&s.dtype).unwrap_or(ElemType::Double);
            let tensor = frame_matrix(&cols, cols.rows(), elem)?;
            vec![NamedTensor { name: None, tensor }]
        }
    };
    let mut out = Vec::with_capacity(spec.len());
    for (k, (s, name)) in spec.iter().zip(&names).enumerate() {
        let t = match (given.len(), spec.len()) {
            (1, 1) => &given[0],
            _ => given
                .iter()
                .find(|t| t.name.as_deref() == Some(name.as_str()))
                .or_else(|| given.get(k).filter(|t| t.name.is_none()))
                .ok_or_else(|| ServeError::BadRequest(format!("missing input '{name}'")))?,
        };
        check_tensor_spec(t, s)?;
        let elem = numpy_elem(&s.dtype).unwrap_or_else(|| t.tensor.elem_type());
        out.push(to_elem(name, t.tensor.clone(), elem)?);
    }
    // A model of one tensor takes a request's one tensor whatever it is called.
    let one = given.len() == 1 && spec.len() == 1;
    if let Some(extra) = given
        .iter()
        .filter_map(|t| t.name.as_deref())
        .find(|n| !one && !names.iter().any(|m| m == n))
    {
        return Err(ServeError::BadRequest(format!(
            "the model has no input '{extra}' (its inputs: {})",
            names.join(", ")
        )));
    }
    let rows = out.first().and_then(|t| t.shape.first().copied());
    if out.iter().any(|t| t.shape.first().copied() != rows) {
        return Err(ServeError::BadRequest(
            "the inputs have different numbers of rows".into(),
        ));
    }
    Ok(Feed::Tensors(out))
}

/// Whether a model folder is one keel serves through Python workers: it has a
/// `python_function` flavor and no flavor keel runs natively.
pub fn needs_python(ml: &MlModel) -> bool {
    ml.keel.is_none() && ml.onnx.is_none() && ml.python_function
}
