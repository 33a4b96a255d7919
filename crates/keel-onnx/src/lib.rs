//! ONNX inference in keel.
//!
//! A model runs on keel's own graph executor when every node has a keel kernel: all the
//! `ai.onnx.ml` operators scikit-learn models exported by skl2onnx are made of (tree
//! ensembles, linear models, scalers, encoders, `ZipMap`, ...) and the standard operators
//! around them. A graph of standard operators only that keel does not fully cover (a neural
//! network, say) runs in tract instead. Anything else is refused at load time with the list of
//! operators neither runs.
//!
//! ```no_run
//! # fn main() -> Result<(), keel_onnx::OnnxError> {
//! let model = keel_onnx::Model::from_file("model.onnx")?;
//! let x = keel_onnx::Tensor::float(vec![1, 4], vec![5.1, 3.5, 1.4, 0.2])?;
//! let outputs = model.run(vec![x])?;
//! # Ok(()) }
//! ```

mod attrs;
mod error;
mod graph;
mod ops;
pub mod proto;
mod tensor;
mod tract;

use std::path::Path;

use prost::Message;

pub use error::OnnxError;
pub use tensor::{Data, ElemType, MapKeys, MapRows, Tensor, Value};

use graph::NativeGraph;
use ops::Opsets;
use proto::{ModelProto, TypeProto, ValueInfoProto};
use tract::TractGraph;

/// One dimension of a declared shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A size known at run time (the batch, usually), by name or unnamed.
    Free(Option<String>),
}

/// What an input or output holds.
#[derive(Clone, Debug, PartialEq)]
pub enum PortType {
    /// A tensor of an element type; `dims` is `None` when the rank is not declared.
    Tensor {
        /// Element type.
        elem: ElemType,
        /// Dimensions.
        dims: Option<Vec<Dim>>,
    },
    /// A sequence of maps (what `ZipMap` makes).
    SeqOfMaps {
        /// The keys' type.
        key: ElemType,
    },
    /// A type keel does not compute with (sequences of tensors, optional values, ...).
    Other,
}

/// A named input or output.
#[derive(Clone, Debug, PartialEq)]
pub struct Port {
    /// Its name in the graph.
    pub name: String,
    /// Its type.
    pub ty: PortType,
}

impl Port {
    fn of(info: &ValueInfoProto) -> Self {
        Self {
            name: info.name.clone(),
            ty: info.r#type.as_ref().map_or(PortType::Other, port_type),
        }
    }
}

fn port_type(t: &TypeProto) -> PortType {
    if let Some(tensor) = &t.tensor_type {
        let dims = tensor.shape.as_ref().map(|s| {
            s.dim
                .iter()
                .map(|d| match (d.dim_value, &d.dim_param) {
                    (Some(v), _) if v > 0 => Dim::Fixed(v as usize),
                    (_, Some(p)) if !p.is_empty() => Dim::Free(Some(p.clone())),
                    _ => Dim::Free(None),
                })
                .collect()
        });
        return PortType::Tensor {
            elem: ElemType::from_onnx(tensor.elem_type),
            dims,
        };
    }
    let map = t
        .sequence_type
        .as_ref()
        .and_then(|s| s.elem_type.as_ref())
        .and_then(|e| e.map_type.as_ref());
    match map {
        Some(m) => PortType::SeqOfMaps {
            key: ElemType::from_onnx(m.key_type),
        },
        None => PortType::Other,
    }
}

enum Engine {
    Native(NativeGraph),
    Tract(TractGraph),
}

/// Which runtime executes a model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    /// keel's own executor and kernels.
    Keel,
    /// tract.
    Tract,
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Keel => "keel",
            Self::Tract => "tract",
        })
    }
}

/// A loaded ONNX model, ready to run from any number of threads.
pub struct Model {
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    metadata: Vec<(String, String)>,
    engine: Engine,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .field("runtime", &self.runtime())
            .finish()
    }
}

impl Model {
    /// Loads a model file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, OnnxError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// Loads a model from its serialised `ModelProto`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OnnxError> {
        let proto = ModelProto::decode(bytes).map_err(|e| OnnxError::Decode(e.to_string()))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| OnnxError::Model("the model has no graph".into()))?;
        let opset = |domain: &[&str], default: i64| {
            proto
                .opset_import
                .iter()
                .find(|o| domain.contains(&o.domain.as_str()))
                .map_or(default, |o| o.version)
        };
        let opsets = Opsets {
            onnx: opset(&["", "ai.onnx"], 1),
            ml: opset(&["ai.onnx.ml"], 1),
        };
        let initialized: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        // Inputs with an initializer are constants with a default (old IR versions list
        // every initializer among the inputs); keel treats them as constants.
        let inputs: Vec<Port> = graph
            .input
            .iter()
            .filter(|i| !initialized.contains(i.name.as_str()))
            .map(Port::of)
            .collect();
        let outputs: Vec<Port> = graph.output.iter().map(Port::of).collect();
        let names: Vec<String> = inputs.iter().map(|p| p.name.clone()).collect();
        let engine = match NativeGraph::build(graph, &names, opsets) {
            Ok(native) => Engine::Native(native),
            Err(OnnxError::Unsupported(ops)) => {
                let standard_only = graph.node.iter().all(|n| ops::is_standard(&n.domain));
                if !standard_only {
                    return Err(OnnxError::Unsupported(ops));
                }
                let tract = TractGraph::load(bytes).map_err(|e| {
                    OnnxError::Unsupported(format!("{ops} (and tract refused the model: {e})"))
                })?;
                Engine::Tract(tract)
            }
            Err(e) => return Err(e),
        };
        Ok(Self {
            inputs,
            outputs,
            metadata: proto
                .metadata_props
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
            engine,
        })
    }

    /// The inputs, in the order [`Model::run`] takes them.
    pub fn inputs(&self) -> &[Port] {
        &self.inputs
    }

    /// The outputs, in the order [`Model::run`] returns them.
    pub fn outputs(&self) -> &[Port] {
        &self.outputs
    }

    /// The model's `metadata_props`.
    pub fn metadata(&self) -> &[(String, String)] {
        &self.metadata
    }

    /// The runtime executing the model.
    pub fn runtime(&self) -> Runtime {
        match self.engine {
            Engine::Native(_) => Runtime::Keel,
            Engine::Tract(_) => Runtime::Tract,
        }
    }

    /// Runs the model on one tensor per input, in declaration order. Each must have the
    /// declared element type, rank and fixed dimensions.
    pub fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Value>, OnnxError> {
        if inputs.len() != self.inputs.len() {
            return Err(OnnxError::Shape(format!(
                "the model takes {} inputs, {} given",
                self.inputs.len(),
                inputs.len()
            )));
        }
        for (port, t) in self.inputs.iter().zip(&inputs) {
            check_input(port, t)?;
        }
        let values = inputs.into_iter().map(Value::Tensor).collect();
        match &self.engine {
            Engine::Native(g) => g.run(values),
            Engine::Tract(g) => g.run(values),
        }
    }
}

/// Checks a tensor against an input's declaration.
pub fn check_input(port: &Port, t: &Tensor) -> Result<(), OnnxError> {
    let err = |reason: String| OnnxError::Input {
        name: port.name.clone(),
        reason,
    };
    let PortType::Tensor { elem, dims } = &port.ty else {
        return Err(err("keel feeds tensors only".into()));
    };
    if t.elem_type() != *elem {
        return Err(err(format!("expected {elem}, got {}", t.elem_type())));
    }
    if let Some(dims) = dims {
        if dims.len() != t.shape.len() {
            return Err(err(format!(
                "expected rank {} ({}), got shape {:?}",
                dims.len(),
                describe(dims),
                t.shape
            )));
        }
        for (d, &n) in dims.iter().zip(&t.shape) {
            if let Dim::Fixed(f) = d
                && *f != n
            {
                return Err(err(format!(
                    "expected shape [{}], got {:?}",
                    describe(dims),
                    t.shape
                )));
            }
        }
    }
    Ok(())
}

/// `N, 4`-style text for a declared shape.
pub fn describe(dims: &[Dim]) -> String {
    dims.iter()
        .map(|d| match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Free(Some(name)) => name.clone(),
            Dim::Free(None) => "?".into(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `t`'s elements converted to `to` (numbers to numbers, numbers to and from strings).
pub fn cast(t: &Tensor, to: ElemType) -> Result<Tensor, OnnxError> {
    ops::standard::shape::cast(t, to)
}
