//! The `onnx` flavor: keel writes its models as ONNX graphs itself, so a model also runs in
//! onnxruntime (or any ONNX runtime with the `ai.onnx.ml` operators) anywhere.
//!
//! With numeric inputs only, the graph takes one float tensor `input` `[N, F]`, the input
//! columns in the model's order, and applies the fitted pipeline (`Imputer`, then `Scaler`
//! where the pipeline standardises). With a text column it takes one rank-1 input per column,
//! named after it (float or string, as MLflow's `onnx` pyfunc feeds a DataFrame's columns),
//! each encoded as the pipeline does (`Imputer`/`Scaler` for numbers; `LabelEncoder` to the
//! category's index, then `OneHotEncoder` or the index as the ordinal code, for text; the
//! empty string counts as missing) and concatenated. Then the model: `MatMul` + `Add` for
//! linear and logistic models, one `TreeEnsembleRegressor` (`ai.onnx.ml`) for trees, forests
//! and boosting, whose raw outputs become predictions with standard operators (`Sigmoid`,
//! `Softmax`, `ArgMax`, `Gather`), or the squared distances to k-means' centroids and `ArgMin`.
//! Outputs: `variable` `[N, 1]` for regression; for classification `label` `[N]` (the class
//! name) and one `probability_<class>` `[N, 1]` per class, so every output has one value per
//! row (as MLflow's `onnx` pyfunc turns outputs into columns); `cluster` `[N]` for k-means.
//!
//! Trees compare `f32` inputs with `f32` thresholds, exactly as keel does; linear models
//! compute in `f32` here and `f64` in keel. k-nearest neighbours have no ONNX form (a k-d tree
//! search is no ONNX operator).

use prost::Message;

use crate::model_dir::KeelModel;
use crate::pipeline::{Encoding, Step};
use crate::train::{LabelType, Model};
use crate::trees::{Aggregate, Link, Node, TreeModel};
use keel_onnx::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TensorTypeProto, TypeProto,
    ValueInfoProto,
};

/// The file of the `onnx` flavor in a model directory.
pub const ONNX_FILE: &str = "model.onnx";
/// The graph's input.
pub const INPUT: &str = "input";
/// The output of a clustering model: the index of the nearest centroid.
pub const CLUSTER: &str = "cluster";
/// `ai.onnx` operator set used.
pub const OPSET: i64 = 17;
/// `ai.onnx.ml` operator set used.
pub const ML_OPSET: i64 = 3;
const ML: &str = "ai.onnx.ml";
const FLOAT: i32 = 1;
const STRING: i32 = 8;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

/// A graph under construction.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

fn attr(name: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ..Default::default()
    }
}

fn int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        r#type: 2,
        i,
        ..attr(name)
    }
}

fn float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        r#type: 1,
        f,
        ..attr(name)
    }
}

fn text(name: &str, s: &str) -> AttributeProto {
    AttributeProto {
        r#type: 3,
        s: s.as_bytes().to_vec(),
        ..attr(name)
    }
}

fn floats(name: &str, v: Vec<f32>) -> AttributeProto {
    AttributeProto {
        r#type: 6,
        floats: v,
        ..attr(name)
    }
}

fn ints(name: &str, v: Vec<i64>) -> AttributeProto {
    AttributeProto {
        r#type: 7,
        ints: v,
        ..attr(name)
    }
}

fn strings(name: &str, v: Vec<&str>) -> AttributeProto {
    AttributeProto {
        r#type: 8,
        strings: v.into_iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..attr(name)
    }
}

impl Graph {
    fn node(
        &mut self,
        op: &str,
        domain: &str,
        inputs: &[&str],
        outputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.iter().map(|s| s.to_string()).collect(),
            name: format!("{op}_{}", self.nodes.len()),
            op_type: op.into(),
            domain: domain.into(),
            attribute,
        });
    }

    fn constant(&mut self, name: &str, dims: Vec<i64>, values: Vec<f32>) {
        self.initializers.push(TensorProto {
            dims,
            data_type: FLOAT,
            float_data: values,
            name: name.into(),
            ..Default::default()
        });
    }
}

fn value(name: &str, elem_type: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|d| match d {
            Some(v) => Dimension {
                dim_value: Some(*v),
                dim_param: None,
            },
            None => Dimension {
                dim_value: None,
                dim_param: Some("N".into()),
            },
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type,
                shape: Some(TensorShapeProto { dim }),
            }),
            ..Default::default()
        }),
    }
}

/// The ONNX model of `model`, or `None` for a kind no ONNX graph expresses (k-nearest
/// neighbours).
pub fn export(model: &KeelModel) -> Option<Vec<u8>> {
    if matches!(model.model, Model::Neighbours(_)) {
        return None;
    }
    let mut g = Graph::default();
    let all_numeric = model
        .pipeline
        .steps
        .iter()
        .all(|s| matches!(s, Step::Numeric { .. }));
    let (features, inputs) = if all_numeric {
        matrix_input(&mut g, &model.pipeline.steps)
    } else {
        column_inputs(&mut g, &model.pipeline.steps)
    };
    let n_features = model.pipeline.feature_names().len();
    let width = n_features as i64;
    let features = features.as_str();
    let mut outputs = Vec::new();
    if let Model::Clusters(m) = &model.model {
        nearest_centroid(&mut g, features, &m.centroids, width);
        outputs.push(value(CLUSTER, INT64, &[None]));
        return Some(encode(model, g, inputs, outputs));
    }
    let classification = model.task == "classification";
    let raw = if classification { "raw" } else { "variable" };
    let link = match &model.model {
        Model::Linear(m) => {
            let outputs = m.coef.len();
            let mut w = vec![0.0f32; n_features * outputs];
            for (o, row) in m.coef.iter().enumerate() {
                for (f, c) in row.iter().enumerate() {
                    w[f * outputs + o] = *c as f32;
                }
            }
            g.constant("coef", vec![width, outputs as i64], w);
            g.constant(
                "intercept",
                vec![outputs as i64],
                m.intercept.iter().map(|b| *b as f32).collect(),
            );
            g.node("MatMul", "", &[features, "coef"], &["product"], vec![]);
            g.node("Add", "", &["product", "intercept"], &[raw], vec![]);
            if outputs == 1 {
                Link::Logistic
            } else {
                Link::Softmax
            }
        }
        // Both left above: k-nearest neighbours have no graph, k-means has its own.
        Model::Neighbours(_) | Model::Clusters(_) => return None,
        Model::Trees(t) => {
            g.node(
                "TreeEnsembleRegressor",
                ML,
                &[features],
                &[raw],
                ensemble(t),
            );
            t.link
        }
    };
    if classification {
        match link {
            Link::Identity => g.node("Identity", "", &[raw], &["probabilities"], vec![]),
            Link::Softmax => g.node(
                "Softmax",
                "",
                &[raw],
                &["probabilities"],
                vec![int("axis", 1)],
            ),
            Link::Logistic => {
                g.constant("one", vec![], vec![1.0]);
                g.node("Sigmoid", "", &[raw], &["p1"], vec![]);
                g.node("Sub", "", &["one", "p1"], &["p0"], vec![]);
                g.node(
                    "Concat",
                    "",
                    &["p0", "p1"],
                    &["probabilities"],
                    vec![int("axis", 1)],
                );
            }
        }
        g.node(
            "ArgMax",
            "",
            &["probabilities"],
            &["label_index"],
            vec![int("axis", 1), int("keepdims", 0)],
        );
        // The labels in the target's own type: text, or the numbers an integer (or
        // fractional) target held.
        let number = |c: &String| c.parse::<f64>().unwrap_or(f64::NAN);
        let (label_type, classes) = match model.label_type {
            LabelType::String => (
                STRING,
                TensorProto {
                    string_data: model
                        .classes
                        .iter()
                        .map(|c| c.as_bytes().to_vec())
                        .collect(),
                    ..Default::default()
                },
            ),
            LabelType::Long => (
                INT64,
                TensorProto {
                    int64_data: model.classes.iter().map(|c| number(c) as i64).collect(),
                    ..Default::default()
                },
            ),
            LabelType::Double => (
                DOUBLE,
                TensorProto {
                    double_data: model.classes.iter().map(number).collect(),
                    ..Default::default()
                },
            ),
        };
        g.initializers.push(TensorProto {
            dims: vec![model.classes.len() as i64],
            data_type: label_type,
            name: "classes".into(),
            ..classes
        });
        g.node(
            "Gather",
            "",
            &["classes", "label_index"],
            &["label"],
            vec![int("axis", 0)],
        );
        let names: Vec<String> = model
            .classes
            .iter()
            .map(|c| format!("probability_{c}"))
            .collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        g.node("Split", "", &["probabilities"], &refs, vec![int("axis", 1)]);
        outputs.push(value("label", label_type, &[None]));
        outputs.extend(names.iter().map(|n| value(n, FLOAT, &[None, Some(1)])));
    } else {
        outputs.push(value(raw, FLOAT, &[None, Some(1)]));
    }
    Some(encode(model, g, inputs, outputs))
}

/// The model file: `g` with its input and `outputs`, the opsets and keel's metadata.
fn encode(
    model: &KeelModel,
    g: Graph,
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
) -> Vec<u8> {
    let onnx = ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: OPSET,
            },
            OperatorSetIdProto {
                domain: ML.into(),
                version: ML_OPSET,
            },
        ],
        producer_name: "keel".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        domain: "keel".into(),
        model_version: 1,
        doc_string: format!("keel {} model of '{}'", model.task, model.target),
        graph: Some(GraphProto {
            node: g.nodes,
            name: "keel".into(),
            initializer: g.initializers,
            doc_string: String::new(),
            input: inputs,
            output: outputs,
        }),
        metadata_props: vec![
            StringStringEntryProto {
                key: "keel.format".into(),
                value: model.format.clone(),
            },
            StringStringEntryProto {
                key: "keel.inputs".into(),
                value: model
                    .inputs
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            },
        ],
    };
    onnx.encode_to_vec()
}

/// Numbers only: one `[N, F]` float input, missing values imputed, then standardised where
/// the pipeline scales. Returns the features' name and the input.
fn matrix_input(g: &mut Graph, steps: &[Step]) -> (String, Vec<ValueInfoProto>) {
    let mut fill = Vec::new();
    let mut offset = Vec::new();
    let mut scale = Vec::new();
    for step in steps {
        if let Step::Numeric {
            fill: f, scale: s, ..
        } = step
        {
            fill.push(*f as f32);
            let (mean, std) = s.unwrap_or((0.0, 1.0));
            offset.push(mean as f32);
            scale.push((1.0 / std) as f32);
        }
    }
    let input = value(INPUT, FLOAT, &[None, Some(fill.len() as i64)]);
    g.node(
        "Imputer",
        ML,
        &[INPUT],
        &["imputed"],
        vec![
            floats("imputed_value_floats", fill),
            float("replaced_value_float", f32::NAN),
        ],
    );
    if offset.iter().all(|o| *o == 0.0) && scale.iter().all(|s| *s == 1.0) {
        return ("imputed".into(), vec![input]);
    }
    g.node(
        "Scaler",
        ML,
        &["imputed"],
        &["scaled"],
        vec![floats("offset", offset), floats("scale", scale)],
    );
    ("scaled".into(), vec![input])
}

/// With text columns: one rank-1 input per column, named after it (float for numbers, string
/// for text, as MLflow's onnx flavor feeds a DataFrame's columns), each turned into its
/// features as the pipeline does and concatenated in its order. Text goes through a
/// `LabelEncoder` to its category's index (the empty string, standing for a missing value, to
/// the fill value's; an unknown value to -1), then a `OneHotEncoder` (all zeros for -1) or a
/// cast to float (the ordinal code). Returns the features' name and the inputs.
fn column_inputs(g: &mut Graph, steps: &[Step]) -> (String, Vec<ValueInfoProto>) {
    g.initializers.push(TensorProto {
        dims: vec![1],
        data_type: INT64,
        int64_data: vec![1],
        name: "axis_one".into(),
        ..Default::default()
    });
    let mut inputs = Vec::new();
    let mut pieces = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let column = step.column();
        let piece = format!("feature_{i}");
        match step {
            Step::Numeric { fill, scale, .. } => {
                inputs.push(value(column, FLOAT, &[None]));
                let wide = format!("column_{i}");
                g.node("Unsqueeze", "", &[column, "axis_one"], &[&wide], vec![]);
                let imputed = format!("imputed_{i}");
                let out = if scale.is_some() { &imputed } else { &piece };
                g.node(
                    "Imputer",
                    ML,
                    &[&wide],
                    &[out],
                    vec![
                        floats("imputed_value_floats", vec![*fill as f32]),
                        float("replaced_value_float", f32::NAN),
                    ],
                );
                if let Some((mean, std)) = scale {
                    g.node(
                        "Scaler",
                        ML,
                        &[&imputed],
                        &[&piece],
                        vec![
                            floats("offset", vec![*mean as f32]),
                            floats("scale", vec![(1.0 / std) as f32]),
                        ],
                    );
                }
            }
            Step::Text {
                fill,
                categories,
                encoding,
                ..
            } => {
                inputs.push(value(column, STRING, &[None]));
                let mut keys: Vec<&str> = categories.iter().map(String::as_str).collect();
                let mut codes: Vec<i64> = (0..categories.len() as i64).collect();
                if !categories.iter().any(|c| c.is_empty()) {
                    keys.push("");
                    codes.push(
                        categories
                            .iter()
                            .position(|c| c == fill)
                            .map_or(-1, |k| k as i64),
                    );
                }
                let coded = format!("codes_{i}");
                g.node(
                    "LabelEncoder",
                    ML,
                    &[column],
                    &[&coded],
                    vec![
                        strings("keys_strings", keys),
                        ints("values_int64s", codes),
                        int("default_int64", -1),
                    ],
                );
                match encoding {
                    Encoding::OneHot => g.node(
                        "OneHotEncoder",
                        ML,
                        &[&coded],
                        &[&piece],
                        vec![
                            ints("cats_int64s", (0..categories.len() as i64).collect()),
                            int("zeros", 1),
                        ],
                    ),
                    Encoding::Ordinal => {
                        let cast = format!("ordinal_{i}");
                        g.node(
                            "Cast",
                            "",
                            &[&coded],
                            &[&cast],
                            vec![int("to", FLOAT as i64)],
                        );
                        g.node("Unsqueeze", "", &[&cast, "axis_one"], &[&piece], vec![]);
                    }
                }
            }
        }
        pieces.push(piece);
    }
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    g.node("Concat", "", &refs, &["features"], vec![int("axis", 1)]);
    ("features".into(), inputs)
}

/// Nodes from `features` to `cluster`, the index of the nearest of `centroids`: squared
/// distances as `|x|^2 - 2 x.c + |c|^2`, then `ArgMin` (the first on ties, as keel).
fn nearest_centroid(g: &mut Graph, features: &str, centroids: &[Vec<f64>], width: i64) {
    let k = centroids.len();
    let mut t = vec![0.0f32; width as usize * k];
    for (c, centroid) in centroids.iter().enumerate() {
        for (f, v) in centroid.iter().enumerate() {
            t[f * k + c] = -2.0 * *v as f32;
        }
    }
    g.constant("minus_two_centroids", vec![width, k as i64], t);
    g.constant(
        "centroid_norms",
        vec![k as i64],
        centroids
            .iter()
            .map(|c| c.iter().map(|v| v * v).sum::<f64>() as f32)
            .collect(),
    );
    g.node(
        "ReduceSumSquare",
        "",
        &[features],
        &["row_norms"],
        vec![ints("axes", vec![1]), int("keepdims", 1)],
    );
    g.node(
        "MatMul",
        "",
        &[features, "minus_two_centroids"],
        &["cross"],
        vec![],
    );
    g.node(
        "Add",
        "",
        &["cross", "centroid_norms"],
        &["partial"],
        vec![],
    );
    g.node("Add", "", &["partial", "row_norms"], &["distances"], vec![]);
    g.node(
        "ArgMin",
        "",
        &["distances"],
        &[CLUSTER],
        vec![
            int("axis", 1),
            int("keepdims", 0),
            int("select_last_index", 0),
        ],
    );
}

/// `TreeEnsembleRegressor` attributes for `t`: every node of every tree, every leaf value as
/// a weight on its output.
fn ensemble(t: &TreeModel) -> Vec<AttributeProto> {
    let (mut tree_ids, mut node_ids, mut features, mut modes) = (vec![], vec![], vec![], vec![]);
    let (mut thresholds, mut trues, mut falses) = (vec![], vec![], vec![]);
    let (mut w_tree, mut w_node, mut w_target, mut weights) = (vec![], vec![], vec![], vec![]);
    for (ti, tree) in t.trees.iter().enumerate() {
        for (ni, node) in tree.nodes.iter().enumerate() {
            tree_ids.push(ti as i64);
            node_ids.push(ni as i64);
            match node {
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    features.push(*feature as i64);
                    modes.push("BRANCH_LEQ");
                    thresholds.push(*threshold);
                    trues.push(*left as i64);
                    falses.push(*right as i64);
                }
                Node::Leaf { value } => {
                    features.push(0);
                    modes.push("LEAF");
                    thresholds.push(0.0);
                    trues.push(0);
                    falses.push(0);
                    for (j, v) in value.iter().enumerate() {
                        w_tree.push(ti as i64);
                        w_node.push(ni as i64);
                        w_target.push((tree.output + j) as i64);
                        weights.push(*v as f32);
                    }
                }
            }
        }
    }
    let missing = vec![0; tree_ids.len()];
    vec![
        int("n_targets", t.outputs as i64),
        text(
            "aggregate_function",
            match t.aggregate {
                Aggregate::Sum => "SUM",
                Aggregate::Average => "AVERAGE",
            },
        ),
        floats("base_values", t.base.iter().map(|b| *b as f32).collect()),
        text("post_transform", "NONE"),
        ints("nodes_treeids", tree_ids),
        ints("nodes_nodeids", node_ids),
        ints("nodes_featureids", features),
        strings("nodes_modes", modes),
        floats("nodes_values", thresholds),
        ints("nodes_truenodeids", trues),
        ints("nodes_falsenodeids", falses),
        ints("nodes_missing_value_tracks_true", missing),
        ints("target_treeids", w_tree),
        ints("target_nodeids", w_node),
        ints("target_ids", w_target),
        floats("target_weights", weights),
    ]
}
