//! A loaded model: where it came from, what it takes, how it predicts.
//!
//! Every request is checked and converted to the model's own feed ([`Feed`]) on the request's
//! task, before it joins a batch, so one bad request never spoils the others in its batch and
//! the model call does no parsing. Feeds of concurrent requests are stacked into one call and
//! the [`Output`] split back by rows.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keel_core::table::{Columns, Values};
use keel_ml::model_dir::KeelModel;
use keel_ml::train::LabelType;
use keel_onnx::{Data, Dim, ElemType, PortType, Tensor, Value};

use crate::error::ServeError;
use crate::mlmodel::{ColumnSpec, MlModel, Signature};
use crate::payload::{Input, Layout, NamedTensor, Output, Table};
use crate::python::{PythonModel, PythonOptions};

/// What runs a model.
enum Engine {
    /// keel's own model format, natively.
    Keel(Box<KeelModel>),
    /// An ONNX graph.
    Onnx(keel_onnx::Model),
    /// A `python_function` model in worker processes.
    Python(Arc<PythonModel>),
}

/// A model ready to serve.
pub struct Predictor {
    engine: Engine,
    signature: Option<Signature>,
    /// The output names every answer carries.
    output_names: Arc<[String]>,
    /// For an MLflow model served from its ONNX conversion: the output that answers as the
    /// model's own `predict` (labels or values), which alone is answered, as a list.
    pyfunc_output: Option<usize>,
    /// Whether that output's 0 and 1 stand for the model's boolean labels.
    pyfunc_booleans: bool,
    /// How a `python_function` model came to run where it does (its conversion checked, or
    /// why it was not converted).
    pub note: Option<String>,
    /// Where it was loaded from.
    pub source: PathBuf,
}

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor")
            .field("source", &self.source)
            .field("runtime", &self.runtime())
            .finish()
    }
}

/// A request converted to what the model takes; feeds of one model stack into one call.
#[derive(Clone, Debug, PartialEq)]
pub enum Feed {
    /// The columns of a keel model, in its input order.
    Columns(Columns),
    /// One tensor per ONNX input, in the graph's input order.
    Tensors(Vec<Tensor>),
}

impl Feed {
    /// The number of rows.
    pub fn rows(&self) -> usize {
        match self {
            Self::Columns(c) => c.rows(),
            Self::Tensors(t) => t
                .first()
                .map_or(0, |t| t.shape.first().copied().unwrap_or(1)),
        }
    }

    /// Feeds of one model as one (same columns, or tensors of the same trailing shapes).
    pub fn stack(parts: &[&Feed]) -> Result<Feed, ServeError> {
        match parts {
            [] => Err(ServeError::Predict("nothing to stack".into())),
            [one] => Ok((*one).clone()),
            [Feed::Columns(first), ..] => {
                let mut values: Vec<Values> = first
                    .values
                    .iter()
                    .map(|v| match v {
                        Values::Numbers(_) => Values::Numbers(Vec::new()),
                        Values::Text(_) => Values::Text(Vec::new()),
                    })
                    .collect();
                for p in parts {
                    let Feed::Columns(c) = p else {
                        return Err(ServeError::Predict("mixed feeds".into()));
                    };
                    for (out, v) in values.iter_mut().zip(&c.values) {
                        match (out, v) {
                            (Values::Numbers(o), Values::Numbers(v)) => o.extend_from_slice(v),
                            (Values::Text(o), Values::Text(v)) => o.extend_from_slice(v),
                            _ => return Err(ServeError::Predict("mixed column types".into())),
                        }
                    }
                }
                Ok(Feed::Columns(Columns {
                    names: first.names.clone(),
                    values,
                }))
            }
            [Feed::Tensors(first), ..] => {
                let mut out = Vec::with_capacity(first.len());
                for (i, t) in first.iter().enumerate() {
                    let mut shape = t.shape.clone();
                    let mut data = t.data.empty_like(t.len() * parts.len());
                    let mut rows = 0;
                    for p in parts {
                        let Feed::Tensors(ts) = p else {
                            return Err(ServeError::Predict("mixed feeds".into()));
                        };
                        let x = &ts[i];
                        if x.shape.len() != shape.len()
                            || x.shape.get(1..) != shape.get(1..)
                            || x.elem_type() != t.elem_type()
                        {
                            return Err(ServeError::Predict("tensors of different shapes".into()));
                        }
                        rows += x.shape.first().copied().unwrap_or(1);
                        data.extend_from(&x.data, 0..x.len());
                    }
                    if let Some(first_dim) = shape.first_mut() {
                        *first_dim = rows;
                    }
                    out.push(Tensor { shape, data });
                }
                Ok(Feed::Tensors(out))
            }
        }
    }
}

impl Predictor {
    /// Opens a model for serving: keel's format or ONNX in keel's runtime ([`Self::load`]),
    /// else a `python_function` model in worker processes started as `python` says; `timeout`
    /// bounds each call into Python.
    pub async fn open(
        path: &Path,
        python: &PythonOptions,
        timeout: std::time::Duration,
    ) -> Result<Self, ServeError> {
        if path.is_dir() {
            let ml = MlModel::read(path)?;
            if crate::python::needs_python(&ml) {
                return Self::open_python(ml, python, timeout).await;
            }
        }
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || Self::load(&path))
            .await
            .map_err(|e| ServeError::Model(e.to_string()))?
    }

    /// A `python_function` model: its ONNX conversion when one is checked equal to the model
    /// (converted once and cached), else its Python workers, with the reason in `note`.
    async fn open_python(
        ml: MlModel,
        python: &PythonOptions,
        timeout: std::time::Duration,
    ) -> Result<Self, ServeError> {
        use crate::python::{convert, env};
        let convert = python.convert && convert::convertible(&ml);
        let extra: &[&str] = match (convert, ml.flavors.iter().any(|f| f == "sklearn")) {
            (false, _) => &[],
            (true, true) => &["skl2onnx"],
            (true, false) => &["skl2onnx", "onnxmltools"],
        };
        let (dir, opts) = (ml.dir.clone(), python.clone());
        let interpreter = tokio::task::spawn_blocking(move || {
            env::interpreter(
                &dir,
                opts.env_manager,
                opts.python.as_deref(),
                &opts.env_cache,
                extra,
            )
        })
        .await
        .map_err(|e| ServeError::Model(e.to_string()))??;
        let why = if convert {
            let (m, py, cache, limit) = (
                ml.clone(),
                interpreter.clone(),
                python.convert_cache.clone(),
                python.load_timeout,
            );
            let (dir, verdict) =
                tokio::task::spawn_blocking(move || convert::convert(&m, &py, &cache, limit))
                    .await
                    .map_err(|e| ServeError::Model(e.to_string()))??;
            if verdict.native {
                let onnx = dir.join("model.onnx");
                let model = keel_onnx::Model::from_file(&onnx)
                    .map_err(|e| ServeError::Model(format!("{}: {e}", onnx.display())))?;
                let mut p = Self::from_onnx(model, ml.signature.clone(), &ml.dir);
                p.pyfunc_output = verdict
                    .output
                    .as_deref()
                    .and_then(|o| p.output_names.iter().position(|n| n == o));
                if p.pyfunc_output.is_none() {
                    return Err(ServeError::Model(format!(
                        "{}: the converted model lacks the output it was checked on",
                        onnx.display()
                    )));
                }
                p.pyfunc_booleans = verdict.boolean_labels;
                tracing::info!(model = %ml.dir.display(), note = %verdict.note, "serving the model's ONNX conversion");
                p.note = Some(verdict.note);
                return Ok(p);
            }
            tracing::warn!(model = %ml.dir.display(), reason = %verdict.note, "not converted to ONNX; serving the model through Python workers");
            verdict.note
        } else if !python.convert {
            "--no-convert".to_string()
        } else {
            Self::unconvertible(&ml)
        };
        let note = Some(format!("not converted to ONNX: {why}"));
        let model = PythonModel::start(&ml, interpreter, python, timeout).await?;
        let mut p = Self::new(
            Engine::Python(Arc::new(model)),
            ml.signature.clone(),
            &ml.dir,
        );
        p.note = note;
        Ok(p)
    }

    /// Why a model with no converter is not converted.
    fn unconvertible(ml: &MlModel) -> String {
        let others: Vec<&str> = ml
            .flavors
            .iter()
            .map(String::as_str)
            .filter(|f| *f != "python_function")
            .collect();
        if others.is_empty() {
            "a custom python_function model has no converter".to_string()
        } else {
            format!(
                "its flavors ({}) have no converter (sklearn, xgboost, lightgbm)",
                others.join(", ")
            )
        }
    }

    /// A predictor for an ONNX graph with a signature.
    pub fn from_onnx(model: keel_onnx::Model, signature: Option<Signature>, source: &Path) -> Self {
        Self::new(Engine::Onnx(model), signature, source)
    }

    /// Loads a model directory (with an `MLmodel` file: keel's own format natively, else its
    /// `onnx` flavor) or a plain `.onnx` file.
    pub fn load(path: &Path) -> Result<Self, ServeError> {
        if path.is_file() {
            let model = keel_onnx::Model::from_file(path)
                .map_err(|e| ServeError::Model(format!("{}: {e}", path.display())))?;
            return Ok(Self::new(Engine::Onnx(model), None, path));
        }
        let ml = MlModel::read(path)?;
        let engine = match (&ml.keel, &ml.onnx) {
            (Some(_), _) => Engine::Keel(Box::new(
                keel_ml::model_dir::read(path).map_err(|e| ServeError::Model(e.to_string()))?,
            )),
            (None, Some(onnx)) => Engine::Onnx(
                keel_onnx::Model::from_file(onnx)
                    .map_err(|e| ServeError::Model(format!("{}: {e}", onnx.display())))?,
            ),
            (None, None) => {
                return Err(ServeError::Model(format!(
                    "{}: a python_function model, served through Python workers (Predictor::open)",
                    path.display()
                )));
            }
        };
        Ok(Self::new(engine, ml.signature, path))
    }

    fn new(engine: Engine, signature: Option<Signature>, source: &Path) -> Self {
        let output_names = match &engine {
            Engine::Keel(m) => keel_output_names(m).into_iter().map(|o| o.0).collect(),
            Engine::Onnx(m) => m.outputs().iter().map(|p| p.name.clone()).collect(),
            Engine::Python(m) => m.describe_outputs().into_iter().map(|o| o.0).collect(),
        };
        Self {
            engine,
            signature,
            output_names,
            pyfunc_output: None,
            pyfunc_booleans: false,
            note: None,
            source: source.to_path_buf(),
        }
    }

    /// Which runtime executes the model: `keel` (native model format), `keel-onnx` (keel's
    /// ONNX kernels), `tract` or `python` (worker processes).
    pub fn runtime(&self) -> &'static str {
        match &self.engine {
            Engine::Keel(_) => "keel",
            Engine::Python(_) => "python",
            Engine::Onnx(m) => match m.runtime() {
                keel_onnx::Runtime::Keel => "keel-onnx",
                keel_onnx::Runtime::Tract => "tract",
            },
        }
    }

    /// Whether the model takes named columns (a keel model, or a signature of columns).
    pub fn takes_columns(&self) -> bool {
        matches!(self.engine, Engine::Keel(_))
            || matches!(self.signature, Some(Signature::Columns(_)))
    }

    /// `keel` for keel's model format, `onnx` for ONNX graphs, `mlflow_pyfunc` for models
    /// run by Python workers.
    pub fn platform(&self) -> &'static str {
        match self.engine {
            Engine::Keel(_) => "keel",
            Engine::Onnx(_) => "onnx",
            Engine::Python(_) => "mlflow_pyfunc",
        }
    }

    /// The Python model behind the predictor, when it runs in worker processes (its calls
    /// are made by [`crate::batch`] on the pool's workers, not by [`Self::predict`]).
    pub fn python(&self) -> Option<&Arc<PythonModel>> {
        match &self.engine {
            Engine::Python(m) => Some(m),
            _ => None,
        }
    }

    /// The inputs the model takes, as (name, type, shape) for metadata endpoints.
    pub fn describe_inputs(&self) -> Vec<(String, String, Vec<i64>)> {
        match &self.engine {
            Engine::Keel(m) => m
                .inputs
                .iter()
                .map(|c| {
                    let ty = if c.dtype == "string" { "BYTES" } else { "FP64" };
                    (c.name.clone(), ty.to_string(), vec![-1])
                })
                .collect(),
            Engine::Onnx(m) => m
                .inputs()
                .iter()
                .map(|p| {
                    let (ty, shape) = port_description(&p.ty);
                    (p.name.clone(), ty, shape)
                })
                .collect(),
            Engine::Python(m) => m.describe_inputs(),
        }
    }

    /// The outputs the model gives, as (name, type, shape).
    pub fn describe_outputs(&self) -> Vec<(String, String, Vec<i64>)> {
        if let (Some(k), Engine::Onnx(m)) = (self.pyfunc_output, &self.engine) {
            let (ty, _) = port_description(&m.outputs()[k].ty);
            let ty = if self.pyfunc_booleans {
                "BOOL".into()
            } else {
                ty
            };
            return vec![("predictions".into(), ty, vec![-1])];
        }
        match &self.engine {
            Engine::Keel(m) => keel_output_names(m)
                .into_iter()
                .map(|(name, ty, width)| (name, ty.to_string(), width))
                .collect(),
            Engine::Onnx(m) => m
                .outputs()
                .iter()
                .map(|p| {
                    let (ty, shape) = port_description(&p.ty);
                    (p.name.clone(), ty, shape)
                })
                .collect(),
            Engine::Python(m) => m.describe_outputs(),
        }
    }

    /// Checks a request against the model's signature and inputs and converts it to a feed.
    /// Errors are 400s naming the offending column or input.
    pub fn prepare(&self, input: Input) -> Result<Feed, ServeError> {
        if input.rows() == 0 {
            return Err(ServeError::BadRequest(
                "the request holds no rows to predict".into(),
            ));
        }
        if let Engine::Python(m) = &self.engine {
            return m.prepare(input);
        }
        // A converted MLflow model takes what its pyfunc takes: named 1-D inputs are columns.
        let input = match (input, &self.signature) {
            (Input::Tensors(t), Some(Signature::Columns(spec))) if self.pyfunc_output.is_some() => {
                Input::Frame(crate::python::tensors_as_columns(spec, t)?)
            }
            (input, _) => input,
        };
        let input = match (input, &self.engine) {
            (Input::Table(t), Engine::Onnx(m)) => match table_matrix(m, &self.signature, t) {
                Ok(tensor) => {
                    if let Some(port) = m.inputs().first() {
                        keel_onnx::check_input(port, &tensor)
                            .map_err(|e| ServeError::BadRequest(e.to_string()))?;
                    }
                    return Ok(Feed::Tensors(vec![tensor]));
                }
                Err(t) => Input::Frame(t.into_columns()),
            },
            (Input::Table(t), Engine::Keel(_)) => Input::Frame(t.into_columns()),
            (input, _) => input,
        };
        if let (Some(Signature::Columns(spec)), Input::Frame(cols)) = (&self.signature, &input) {
            check_columns(spec, cols)?;
        }
        match &self.engine {
            Engine::Keel(m) => keel_feed(m, input),
            Engine::Onnx(m) => onnx_feed(m, &self.signature, input),
            Engine::Python(m) => m.prepare(input),
        }
    }

    /// Runs the model on a request's feed, which stays the caller's (for the log).
    pub fn predict(&self, feed: &Feed) -> Result<Output, ServeError> {
        if self.pyfunc_output.is_some()
            && let Feed::Tensors(t) = feed
        {
            return self.predict_owned(Feed::Tensors(t.clone()));
        }
        let values = match (&self.engine, feed) {
            (Engine::Keel(m), Feed::Columns(c)) => keel_predict(m, c)?,
            (Engine::Onnx(m), Feed::Tensors(t)) => m.run(t.clone())?,
            _ => {
                return Err(ServeError::Predict(
                    "the feed does not fit the model".into(),
                ));
            }
        };
        Ok(Output {
            names: self.output_names.clone(),
            values,
            layout: Layout::ByInput,
        })
    }

    /// Runs the model on a feed it may consume (a stacked batch), without the copy of its
    /// tensors [`Self::predict`] makes.
    pub fn predict_owned(&self, feed: Feed) -> Result<Output, ServeError> {
        match (&self.engine, feed) {
            (Engine::Onnx(m), Feed::Tensors(t)) => {
                let values = m.run(t)?;
                match self.pyfunc_output {
                    Some(k) => pyfunc_answer(values, k, self.pyfunc_booleans),
                    None => Ok(Output {
                        names: self.output_names.clone(),
                        values,
                        layout: Layout::ByInput,
                    }),
                }
            }
            (_, feed) => self.predict(&feed),
        }
    }
}

/// The output `k` of a converted MLflow model as its `predict` answers: one value per row,
/// written as a list.
fn pyfunc_answer(mut values: Vec<Value>, k: usize, booleans: bool) -> Result<Output, ServeError> {
    if k >= values.len() {
        return Err(ServeError::Predict(
            "the converted model lacks its answer".into(),
        ));
    }
    let Value::Tensor(mut t) = values.swap_remove(k) else {
        return Err(ServeError::Predict(
            "the converted model answered a map".into(),
        ));
    };
    let rows = t.shape.first().copied().unwrap_or(1);
    if t.len() == rows {
        t.shape = vec![rows];
    }
    if booleans && let Data::Int64(v) = &t.data {
        t.data = Data::Bool(v.iter().map(|x| *x != 0).collect());
    }
    Ok(Output {
        names: PREDICTIONS.with(Clone::clone),
        values: vec![Value::Tensor(t)],
        layout: Layout::List,
    })
}

thread_local! {
    /// The one output name of a converted model's answers, shared.
    static PREDICTIONS: Arc<[String]> = Arc::from(vec!["predictions".to_string()]);
}

fn port_description(ty: &PortType) -> (String, Vec<i64>) {
    match ty {
        PortType::Tensor { elem, dims } => (
            v2_datatype(*elem).to_string(),
            dims.as_ref().map_or_else(Vec::new, |d| {
                d.iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => *n as i64,
                        Dim::Free(_) => -1,
                    })
                    .collect()
            }),
        ),
        PortType::SeqOfMaps { .. } => ("FP32".into(), vec![-1, -1]),
        PortType::Other => ("BYTES".into(), vec![-1]),
    }
}

/// The Open Inference Protocol's name for an element type.
pub fn v2_datatype(elem: ElemType) -> &'static str {
    match elem {
        ElemType::Float => "FP32",
        ElemType::Double => "FP64",
        ElemType::Int64 => "INT64",
        ElemType::Int32 => "INT32",
        ElemType::Bool => "BOOL",
        ElemType::String => "BYTES",
        ElemType::Other(_) => "BYTES",
    }
}

/// Whether a column of an MLflow type takes numbers.
fn numeric(ty: &str) -> bool {
    matches!(
        ty,
        "double" | "float" | "long" | "integer" | "boolean" | "datetime"
    )
}

/// What a text column holds, for messages: booleans (which requests carry as `true`/`false`
/// text) or strings.
pub(crate) fn text_kind(values: &[Option<String>]) -> &'static str {
    let booleans = values.iter().flatten().all(|v| v == "true" || v == "false");
    if booleans { "booleans" } else { "strings" }
}

/// Required signature columns are present, with values of their type.
fn check_columns(spec: &[ColumnSpec], cols: &Columns) -> Result<(), ServeError> {
    check_missing(spec, cols)?;
    for c in spec {
        let Some(name) = c.name.as_deref() else {
            continue;
        };
        match cols.get(name) {
            Some(Values::Text(v)) if numeric(&c.ty) && v.iter().any(Option::is_some) => {
                return Err(ServeError::BadRequest(format!(
                    "column '{name}' must hold {} values, got {}",
                    c.ty,
                    text_kind(v)
                )));
            }
            Some(Values::Numbers(v)) if c.ty == "string" && v.iter().any(Option::is_some) => {
                return Err(ServeError::BadRequest(format!(
                    "column '{name}' must hold strings, got numbers"
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Every required signature column is present (one 400 naming all that are not).
pub(crate) fn check_missing(spec: &[ColumnSpec], cols: &Columns) -> Result<(), ServeError> {
    let missing: Vec<&str> = spec
        .iter()
        .filter(|c| c.required)
        .filter_map(|c| c.name.as_deref())
        .filter(|n| cols.get(n).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(ServeError::BadRequest(format!(
            "missing input column{} {} (the model takes {})",
            if missing.len() > 1 { "s" } else { "" },
            missing
                .iter()
                .map(|m| format!("'{m}'"))
                .collect::<Vec<_>>()
                .join(", "),
            describe_spec(spec)
        )));
    }
    Ok(())
}

fn describe_spec(spec: &[ColumnSpec]) -> String {
    spec.iter()
        .map(|c| format!("{}: {}", c.name.as_deref().unwrap_or("?"), c.ty))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A keel model's columns from a request.
fn keel_feed(m: &KeelModel, input: Input) -> Result<Feed, ServeError> {
    let cols = match input {
        Input::Frame(c) => c,
        Input::Table(t) => t.into_columns(),
        Input::Tensors(t) => {
            // One numeric matrix [N, F] for a model whose inputs are all numeric.
            let [NamedTensor { tensor, .. }] = t.as_slice() else {
                return Err(ServeError::BadRequest(
                    "this model takes named columns (dataframe_split, dataframe_records or CSV) or one [N, F] tensor".into(),
                ));
            };
            let (rows, width) = tensor.rows_cols();
            if tensor.shape.len() != 2 || width != m.inputs.len() {
                return Err(ServeError::BadRequest(format!(
                    "the model takes {} columns ({}); the tensor has shape {:?}",
                    m.inputs.len(),
                    m.inputs
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    tensor.shape
                )));
            }
            if m.inputs.iter().any(|c| c.dtype == "string") {
                return Err(ServeError::BadRequest(
                    "the model has text columns: send named columns".into(),
                ));
            }
            let x = tensor
                .to_f32()
                .map_err(|_| ServeError::BadRequest("the tensor must hold numbers".into()))?;
            let numbers: Vec<f64> = match &tensor.data {
                Data::Double(v) => v.clone(),
                _ => x.iter().map(|&v| f64::from(v)).collect(),
            };
            Columns {
                names: m.inputs.iter().map(|c| c.name.clone()).collect(),
                values: (0..width)
                    .map(|j| {
                        Values::Numbers(
                            (0..rows)
                                .map(|i| Some(numbers[i * width + j]).filter(|v| !v.is_nan()))
                                .collect(),
                        )
                    })
                    .collect(),
            }
        }
    };
    let mut names = Vec::with_capacity(m.inputs.len());
    let mut values = Vec::with_capacity(m.inputs.len());
    let rows = cols.rows();
    for c in &m.inputs {
        let v = match cols.get(&c.name) {
            Some(v) => v.clone(),
            None => {
                return Err(ServeError::BadRequest(format!(
                    "missing input column '{}' (the model takes {})",
                    c.name,
                    m.inputs
                        .iter()
                        .map(|c| format!("{}: {}", c.name, c.dtype))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        let v = match (c.dtype.as_str(), v) {
            ("string", Values::Numbers(n)) if n.iter().all(Option::is_none) => {
                Values::Text(vec![None; rows])
            }
            ("string", Values::Numbers(_)) => {
                return Err(ServeError::BadRequest(format!(
                    "column '{}' must hold strings, got numbers",
                    c.name
                )));
            }
            ("string", t @ Values::Text(_)) => t,
            (_, Values::Text(t)) if t.iter().all(Option::is_none) => {
                Values::Numbers(vec![None; rows])
            }
            (_, Values::Text(t)) => {
                return Err(ServeError::BadRequest(format!(
                    "column '{}' must hold numbers, got {}",
                    c.name,
                    text_kind(&t)
                )));
            }
            (_, n @ Values::Numbers(_)) => n,
        };
        names.push(c.name.clone());
        values.push(v);
    }
    Ok(Feed::Columns(Columns { names, values }))
}

/// The output names of a keel model, their types and widths (as the ONNX export names them).
fn keel_output_names(m: &KeelModel) -> Vec<(String, &'static str, Vec<i64>)> {
    match m.task.as_str() {
        "classification" => std::iter::once((
            "label".to_string(),
            match m.label_type {
                LabelType::String => "BYTES",
                LabelType::Long => "INT64",
                LabelType::Double => "FP64",
            },
            vec![-1],
        ))
        .chain(
            m.classes
                .iter()
                .map(|c| (format!("probability_{c}"), "FP64", vec![-1, 1])),
        )
        .collect(),
        "clustering" => vec![("cluster".into(), "INT64", vec![-1])],
        _ => vec![("variable".into(), "FP64", vec![-1, 1])],
    }
}

/// A keel model's outputs, in the order of [`keel_output_names`].
fn keel_predict(m: &KeelModel, cols: &Columns) -> Result<Vec<Value>, ServeError> {
    let rows: Vec<usize> = (0..cols.rows()).collect();
    let n = rows.len();
    let fail = |e: keel_ml::MlError| ServeError::Predict(e.to_string());
    let x = m.pipeline.transform(cols, &rows).map_err(fail)?;
    let values = match (&m.model, m.task.as_str()) {
        (keel_ml::train::Model::Clusters(k), _) => {
            let c = k.predict(&x).into_iter().map(|c| c as i64).collect();
            vec![Value::Tensor(Tensor::new(vec![n], Data::Int64(c))?)]
        }
        (model, "classification") => {
            let proba = model.predict_proba(&x).map_err(fail)?;
            let best: Vec<&str> = proba
                .iter()
                .map(|p| {
                    let mut best = 0;
                    for (k, v) in p.iter().enumerate() {
                        if *v > p[best] {
                            best = k;
                        }
                    }
                    m.classes.get(best).map_or("", String::as_str)
                })
                .collect();
            // Labels in the target's own type (the classes are kept as text).
            let number = |c: &str| c.parse::<f64>().unwrap_or(f64::NAN);
            let labels = match m.label_type {
                LabelType::String => Data::String(best.iter().map(|c| c.to_string()).collect()),
                LabelType::Long => Data::Int64(best.iter().map(|c| number(c) as i64).collect()),
                LabelType::Double => Data::Double(best.iter().map(|c| number(c)).collect()),
            };
            let mut values = vec![Value::Tensor(Tensor::new(vec![n], labels)?)];
            for k in 0..m.classes.len() {
                let col = proba
                    .iter()
                    .map(|p| p.get(k).copied().unwrap_or(0.0))
                    .collect();
                values.push(Value::Tensor(Tensor::new(vec![n, 1], Data::Double(col))?));
            }
            values
        }
        (model, _) => {
            let v = model.predict_values(&x).map_err(fail)?;
            vec![Value::Tensor(Tensor::new(vec![n, 1], Data::Double(v))?)]
        }
    };
    Ok(values)
}

/// The element type a tensor signature's numpy dtype stands for.
pub(crate) fn numpy_elem(dtype: &str) -> Option<ElemType> {
    Some(match dtype {
        "float32" => ElemType::Float,
        "float64" => ElemType::Double,
        "int64" => ElemType::Int64,
        "int32" => ElemType::Int32,
        "bool" => ElemType::Bool,
        "str" | "object" => ElemType::String,
        _ => return None,
    })
}

/// Casts a request tensor to the element type an input declares.
pub(crate) fn to_elem(name: &str, t: Tensor, elem: ElemType) -> Result<Tensor, ServeError> {
    if t.elem_type() == elem {
        return Ok(t);
    }
    let ok = matches!(
        (t.elem_type(), elem),
        (
            ElemType::Double,
            ElemType::Float | ElemType::Int64 | ElemType::Int32
        ) | (ElemType::Bool, ElemType::Bool)
    );
    if !ok {
        return Err(ServeError::BadRequest(format!(
            "input '{name}' must hold {elem} values, got {}",
            match t.elem_type() {
                ElemType::String => "strings",
                ElemType::Bool => "booleans",
                _ => "numbers",
            }
        )));
    }
    if matches!(elem, ElemType::Int64 | ElemType::Int32)
        && let Data::Double(v) = &t.data
        && let Some(bad) = v.iter().find(|x| x.fract() != 0.0 || x.is_nan())
    {
        return Err(ServeError::BadRequest(format!(
            "input '{name}' must hold integers, got {bad}"
        )));
    }
    Ok(keel_onnx::cast(&t, elem)?)
}

/// The tensors of an ONNX model's inputs from a request.
fn onnx_feed(
    m: &keel_onnx::Model,
    signature: &Option<Signature>,
    input: Input,
) -> Result<Feed, ServeError> {
    let ports = m.inputs();
    let port_elem = |i: usize| match &ports[i].ty {
        PortType::Tensor { elem, .. } => *elem,
        _ => ElemType::Float,
    };
    let port_rank = |i: usize| match &ports[i].ty {
        PortType::Tensor { dims: Some(d), .. } => Some(d.len()),
        _ => None,
    };
    let tensors: Vec<Tensor> = match input {
        Input::Table(t) => return onnx_feed(m, signature, Input::Frame(t.into_columns())),
        Input::Frame(cols) => {
            let n = cols.rows();
            // Order the columns as the signature lists them, when it names them.
            let cols = match signature {
                Some(Signature::Columns(spec)) if spec.iter().all(|c| c.name.is_some()) => {
                    let names: Vec<&str> = spec.iter().filter_map(|c| c.name.as_deref()).collect();
                    let mut ordered = Columns {
                        names: Vec::new(),
                        values: Vec::new(),
                    };
                    for name in names {
                        if let Some(v) = cols.get(name) {
                            ordered.names.push(name.to_string());
                            ordered.values.push(v.clone());
                        }
                    }
                    ordered
                }
                _ => cols,
            };
            if ports.len() == 1 {
                // The frame's values as one [N, C] matrix, as MLflow's onnx flavor feeds it.
                let elem = port_elem(0);
                let width = cols.names.len();
                if let PortType::Tensor { dims: Some(d), .. } = &ports[0].ty
                    && let Some(Dim::Fixed(f)) = d.get(1)
                    && *f != width
                {
                    return Err(ServeError::BadRequest(format!(
                        "the model takes {f} columns, the request has {width} ({})",
                        cols.names.join(", ")
                    )));
                }
                let tensor = frame_matrix(&cols, n, elem)?;
                let tensor = match port_rank(0) {
                    Some(1) if width == 1 => Tensor {
                        shape: vec![n],
                        data: tensor.data,
                    },
                    _ => tensor,
                };
                vec![tensor]
            } else {
                // One column per input, by name.
                ports
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        let values = cols.get(&p.name).ok_or_else(|| {
                            ServeError::BadRequest(format!(
                                "missing input column '{}' (the model takes {})",
                                p.name,
                                ports
                                    .iter()
                                    .map(|p| p.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ))
                        })?;
                        let one = Columns {
                            names: vec![p.name.clone()],
                            values: vec![values.clone()],
                        };
                        let t = frame_matrix(&one, n, port_elem(i))?;
                        let shape = if port_rank(i) == Some(1) {
                            vec![n]
                        } else {
                            vec![n, 1]
                        };
                        Ok(Tensor {
                            shape,
                            data: t.data,
                        })
                    })
                    .collect::<Result<_, ServeError>>()?
            }
        }
        Input::Tensors(given) => {
            if let Some(Signature::Tensors(spec)) = signature {
                for (k, t) in given.iter().enumerate() {
                    let s = t
                        .name
                        .as_ref()
                        .and_then(|n| spec.iter().find(|s| s.name.as_ref() == Some(n)))
                        .or_else(|| spec.get(k));
                    if let Some(s) = s {
                        check_tensor_spec(t, s)?;
                    }
                }
            }
            let mut given = given;
            let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
            if given.len() == 1 && given[0].name.is_none() && ports.len() == 1 {
                given[0].name = Some(ports[0].name.clone());
            }
            if let Some(unknown) = given
                .iter()
                .find(|t| !t.name.as_deref().is_some_and(|n| names.contains(&n)))
            {
                return Err(ServeError::BadRequest(format!(
                    "the model has no input {} (its inputs: {})",
                    unknown
                        .name
                        .as_deref()
                        .map_or("without a name".into(), |n| format!("'{n}'")),
                    names.join(", ")
                )));
            }
            ports
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let at = given
                        .iter()
                        .position(|t| t.name.as_deref() == Some(p.name.as_str()))
                        .ok_or_else(|| {
                            ServeError::BadRequest(format!("missing input '{}'", p.name))
                        })?;
                    to_elem(&p.name, given[at].tensor.clone(), port_elem(i))
                })
                .collect::<Result<_, _>>()?
        }
    };
    for (p, t) in ports.iter().zip(&tensors) {
        keel_onnx::check_input(p, t).map_err(|e| ServeError::BadRequest(e.to_string()))?;
    }
    Ok(Feed::Tensors(tensors))
}

pub(crate) fn check_tensor_spec(
    t: &NamedTensor,
    s: &crate::mlmodel::TensorSpec,
) -> Result<(), ServeError> {
    let name = t.name.as_deref().or(s.name.as_deref()).unwrap_or("input");
    if s.shape.len() != t.tensor.shape.len()
        || s.shape
            .iter()
            .zip(&t.tensor.shape)
            .any(|(&want, &got)| want >= 0 && want as usize != got)
    {
        return Err(ServeError::BadRequest(format!(
            "input '{name}' must have shape {:?} (-1 for any size), got {:?}",
            s.shape, t.tensor.shape
        )));
    }
    if let Some(elem) = numpy_elem(&s.dtype) {
        let fits = match t.tensor.elem_type() {
            ElemType::Double => !matches!(elem, ElemType::String | ElemType::Bool),
            other => other == elem,
        };
        if !fits {
            return Err(ServeError::BadRequest(format!(
                "input '{name}' must hold {} values",
                s.dtype
            )));
        }
    }
    Ok(())
}

/// A numbers-only frame as the `[N, C]` matrix of a model with one float input, in the order
/// of the signature's columns, straight from the table's row-major values. The table comes back
/// (for the general path, its checks and errors) when the model or the signature asks for
/// anything else: several inputs, other element types, text or missing columns, another width.
fn table_matrix(
    m: &keel_onnx::Model,
    signature: &Option<Signature>,
    t: Table,
) -> Result<Tensor, Table> {
    let [port] = m.inputs() else {
        return Err(t);
    };
    let PortType::Tensor { elem, dims } = &port.ty else {
        return Err(t);
    };
    if !matches!(elem, ElemType::Float | ElemType::Double) {
        return Err(t);
    }
    let mut order = None;
    if let Some(Signature::Columns(spec)) = signature {
        let fits = spec.iter().all(|c| match c.name.as_deref() {
            None => true,
            Some(name) => match t.position(name) {
                Some(_) => numeric(&c.ty),
                None => !c.required,
            },
        });
        if !fits {
            return Err(t);
        }
        if spec.iter().all(|c| c.name.is_some()) {
            let picked: Vec<usize> = spec
                .iter()
                .filter_map(|c| t.position(c.name.as_deref()?))
                .collect();
            if !picked.iter().copied().eq(0..t.names.len()) {
                order = Some(picked);
            }
        }
    }
    let width = order.as_ref().map_or(t.names.len(), Vec::len);
    let shape = match dims.as_deref() {
        Some([_]) if width == 1 => vec![t.rows],
        None | Some([_, Dim::Free(_)]) => vec![t.rows, width],
        Some([_, Dim::Fixed(f)]) if *f == width => vec![t.rows, width],
        _ => return Err(t),
    };
    let all = t.names.len();
    let data = match (order, elem) {
        (None, ElemType::Float) => Data::Float(t.values.iter().map(|&x| x as f32).collect()),
        (None, _) => Data::Double(t.values),
        (Some(order), elem) => {
            let picked = (0..t.rows).flat_map(|r| order.iter().map(move |&j| r * all + j));
            if *elem == ElemType::Float {
                Data::Float(picked.map(|i| t.values[i] as f32).collect())
            } else {
                Data::Double(picked.map(|i| t.values[i]).collect())
            }
        }
    };
    Ok(Tensor { shape, data })
}

/// Columns as one row-major `[N, C]` tensor of `elem`.
pub(crate) fn frame_matrix(cols: &Columns, n: usize, elem: ElemType) -> Result<Tensor, ServeError> {
    let width = cols.values.len();
    let data = if elem == ElemType::String {
        let mut out = Vec::with_capacity(n * width);
        for i in 0..n {
            for (name, v) in cols.names.iter().zip(&cols.values) {
                match v {
                    Values::Text(t) => out.push(t[i].clone().unwrap_or_default()),
                    Values::Numbers(_) => {
                        return Err(ServeError::BadRequest(format!(
                            "column '{name}' must hold strings, got numbers"
                        )));
                    }
                }
            }
        }
        Data::String(out)
    } else {
        let mut out = Vec::with_capacity(n * width);
        for i in 0..n {
            for (name, v) in cols.names.iter().zip(&cols.values) {
                match v {
                    Values::Numbers(x) => out.push(x[i].unwrap_or(f64::NAN)),
                    Values::Text(t) if t[i].is_none() => out.push(f64::NAN),
                    Values::Text(t) => {
                        return Err(ServeError::BadRequest(format!(
                            "column '{name}' must hold numbers, got {}",
                            text_kind(t)
                        )));
                    }
                }
            }
        }
        if matches!(elem, ElemType::Int64 | ElemType::Int32)
            && let Some(bad) = out.iter().find(|x| x.fract() != 0.0)
        {
            return Err(ServeError::BadRequest(format!(
                "the model takes integers, got {bad}"
            )));
        }
        match elem {
            ElemType::Float => Data::Float(out.into_iter().map(|v| v as f32).collect()),
            ElemType::Int64 => Data::Int64(out.into_iter().map(|v| v as i64).collect()),
            ElemType::Int32 => Data::Int32(out.into_iter().map(|v| v as i32).collect()),
            ElemType::Bool => Data::Bool(out.into_iter().map(|v| v != 0.0).collect()),
            _ => Data::Double(out),
        }
    };
    Ok(Tensor::new(vec![n, width], data)?)
}
