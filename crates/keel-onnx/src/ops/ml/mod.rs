//! The `ai.onnx.ml` operators: what scikit-learn models exported by skl2onnx (and keel's own
//! models) are made of. Each follows the operator's ONNX definition and, where the definition
//! leaves room, onnxruntime's behaviour.

mod encode;
mod ensemble;
mod linear;
mod preprocess;
mod select;
mod svc;
mod svm;
mod transform;
mod tree;

use super::Kernel;
use crate::error::OnnxError;
use crate::proto::NodeProto;

/// A kernel for an `ai.onnx.ml` node, or `None` when keel has no such operator.
pub(crate) fn build(node: &NodeProto, opset: i64) -> Result<Option<Box<dyn Kernel>>, OnnxError> {
    Ok(Some(match node.op_type.as_str() {
        "ArrayFeatureExtractor" => Box::new(select::ArrayFeatureExtractor),
        "Binarizer" => Box::new(preprocess::Binarizer::build(node)?),
        "CategoryMapper" => Box::new(encode::CategoryMapper::build(node)?),
        "FeatureVectorizer" => Box::new(select::FeatureVectorizer::build(node)?),
        "Imputer" => Box::new(preprocess::Imputer::build(node)?),
        "LabelEncoder" => Box::new(encode::LabelEncoder::build(node, opset)?),
        "LinearClassifier" => Box::new(linear::Classifier::build(node)?),
        "LinearRegressor" => Box::new(linear::Regressor::build(node)?),
        "Normalizer" => Box::new(preprocess::Normalizer::build(node)?),
        "OneHotEncoder" => Box::new(encode::OneHotEncoder::build(node)?),
        "Scaler" => Box::new(preprocess::Scaler::build(node)?),
        "SVMClassifier" => Box::new(svc::Classifier::build(node)?),
        "SVMRegressor" => Box::new(svm::Regressor::build(node)?),
        "TreeEnsemble" => Box::new(ensemble::build(node)?),
        "TreeEnsembleClassifier" => Box::new(tree::Classifier::build(node)?),
        "TreeEnsembleRegressor" => Box::new(tree::Regressor::build(node)?),
        "ZipMap" => Box::new(select::ZipMap::build(node)?),
        _ => return Ok(None),
    }))
}
