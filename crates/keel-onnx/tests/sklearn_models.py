"""Exports scikit-learn models with skl2onnx and records what onnxruntime answers for them.

usage: sklearn_models.py OUT_DIR

For every case it writes OUT_DIR/<case>.onnx and OUT_DIR/<case>.json: the inputs fed (name,
dtype, shape, row-major data; NaN as null) and onnxruntime's outputs (tensors as above, ZipMap
outputs as their keys and one row of values per map). keel's tests run the same inputs through
keel's runtime and compare.
"""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer, MinMaxScaler, Normalizer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC, SVR, LinearSVC, NuSVC, NuSVR, OneClassSVM
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

RNG = np.random.default_rng(7)


def encode_array(name, a):
    a = np.asarray(a)
    if a.dtype.kind in "OUS":
        data = [str(v) for v in a.ravel()]
        dtype = "string"
    else:
        dtype = {"f": "float" if a.dtype == np.float32 else "double", "i": "int64", "b": "bool"}[a.dtype.kind]
        if a.dtype.kind == "i" and a.dtype != np.int64:
            dtype = "int32" if a.dtype == np.int32 else "int64"
        data = [None if (isinstance(v, float) and np.isnan(v)) else v for v in a.ravel().tolist()]
    return {"name": name, "kind": "tensor", "dtype": dtype, "shape": list(a.shape), "data": data}


def encode_output(name, v):
    if isinstance(v, list) and v and isinstance(v[0], dict):
        keys = list(v[0].keys())
        return {
            "name": name,
            "kind": "maps",
            "keys": [k if isinstance(k, str) else int(k) for k in keys],
            "data": [float(row[k]) for row in v for k in keys],
        }
    return encode_array(name, v)


def save(out, case, model_proto, feeds):
    path = out / f"{case}.onnx"
    path.write_bytes(model_proto.SerializeToString())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    results = sess.run(names, feeds)
    record = {
        "inputs": [encode_array(k, v) for k, v in feeds.items()],
        "outputs": [encode_output(n, r) for n, r in zip(names, results)],
        "ops": sorted({f"{n.domain}:{n.op_type}" for n in model_proto.graph.node}),
    }
    (out / f"{case}.json").write_text(json.dumps(record, allow_nan=False))


def export(out, case, model, X, options=None, **kw):
    proto = to_onnx(model, X[:1], options=options, target_opset={"": 17, "ai.onnx.ml": 3}, **kw)
    save(out, case, proto, {proto.graph.input[0].name: X})


def tree_ensemble_v5(proto):
    """The model with its single-target TreeEnsembleRegressor rewritten as the opset-5
    TreeEnsemble: interior nodes and leaves in separate lists, the base value as one more tree
    that is a single leaf."""
    old = next(n for n in proto.graph.node if n.op_type == "TreeEnsembleRegressor")
    a = {x.name: helper.get_attribute_value(x) for x in old.attribute}
    assert a["n_targets"] == 1
    modes = [m.decode() for m in a["nodes_modes"]]
    node_at = {(t, i): k for k, (t, i) in enumerate(zip(a["nodes_treeids"], a["nodes_nodeids"]))}
    weight = {(t, i): w for t, i, w in zip(a["target_treeids"], a["target_nodeids"], a["target_weights"])}
    inner, leaves = {}, []  # v3 position -> v5 node index; v5 leaf weights
    for k, m in enumerate(modes):
        if m != "LEAF":
            inner[k] = len(inner)
    leaf_of = {}
    for k, m in enumerate(modes):
        if m == "LEAF":
            leaf_of[k] = len(leaves)
            leaves.append(weight.get((a["nodes_treeids"][k], a["nodes_nodeids"][k]), 0.0))
    codes = {"BRANCH_LEQ": 0, "BRANCH_LT": 1, "BRANCH_GTE": 2, "BRANCH_GT": 3, "BRANCH_EQ": 4, "BRANCH_NEQ": 5}
    lists = {k: [] for k in ["modes", "feat", "split", "t", "tl", "f", "fl", "miss"]}
    for k, m in enumerate(modes):
        if m == "LEAF":
            continue
        tree = a["nodes_treeids"][k]
        t = node_at[(tree, a["nodes_truenodeids"][k])]
        f = node_at[(tree, a["nodes_falsenodeids"][k])]
        lists["modes"].append(codes[m])
        lists["feat"].append(a["nodes_featureids"][k])
        lists["split"].append(a["nodes_values"][k])
        lists["t"].append(leaf_of[t] if t in leaf_of else inner[t])
        lists["tl"].append(int(t in leaf_of))
        lists["f"].append(leaf_of[f] if f in leaf_of else inner[f])
        lists["fl"].append(int(f in leaf_of))
        missing = a.get("nodes_missing_value_tracks_true") or [0] * len(modes)
        lists["miss"].append(missing[k])
    roots = sorted({inner[node_at[(t, 0)]] for t in a["nodes_treeids"]})
    base = a.get("base_values") or []
    if base:
        # A tree that is one leaf: one node whose branches both lead to it.
        roots.append(len(lists["modes"]))
        for key, v in zip(["modes", "feat", "split", "t", "tl", "f", "fl", "miss"], [0, 0, 0.0, len(leaves), 1, len(leaves), 1, 0]):
            lists[key].append(v)
        leaves.append(base[0])
    aggregate = {"AVERAGE": 0, "SUM": 1, "MIN": 2, "MAX": 3}[a.get("aggregate_function", b"SUM").decode()]
    node = helper.make_node(
        "TreeEnsemble", list(old.input), list(old.output), domain="ai.onnx.ml",
        n_targets=1, aggregate_function=aggregate, post_transform=0, tree_roots=roots,
        nodes_modes=numpy_helper.from_array(np.array(lists["modes"], dtype=np.uint8)),
        nodes_featureids=lists["feat"],
        nodes_splits=numpy_helper.from_array(np.array(lists["split"], dtype=np.float32)),
        nodes_truenodeids=lists["t"], nodes_trueleafs=lists["tl"],
        nodes_falsenodeids=lists["f"], nodes_falseleafs=lists["fl"],
        nodes_missing_value_tracks_true=lists["miss"],
        leaf_targetids=[0] * len(leaves),
        leaf_weights=numpy_helper.from_array(np.array(leaves, dtype=np.float32)),
    )
    nodes = [node if n is old else n for n in proto.graph.node]
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    for op in proto.opset_import:
        if op.domain == "ai.onnx.ml":
            op.version = 5
    return proto


def categorical_tree_ensemble():
    """A hand-built opset-5 TreeEnsemble on double input: set membership, NaN routing, two
    targets, MAX aggregation."""
    # Tree 0: x0 in {1, 3, 5} ? (x1 <= 0.5 ? leaf0 : leaf1) : leaf2; NaN in x0 goes true.
    # Tree 1: x1 > 2 ? leaf3 : (x0 != 4 ? leaf4 : leaf5). Tree 2 is the single leaf6.
    node = helper.make_node(
        "TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml",
        n_targets=2, aggregate_function=3, post_transform=0, tree_roots=[0, 2, 4],
        nodes_modes=numpy_helper.from_array(np.array([6, 0, 3, 5, 0], dtype=np.uint8)),
        nodes_featureids=[0, 1, 1, 0, 0],
        nodes_splits=numpy_helper.from_array(np.array([0.0, 0.5, 2.0, 4.0, 0.0])),
        nodes_truenodeids=[1, 0, 3, 4, 6], nodes_trueleafs=[0, 1, 1, 1, 1],
        nodes_falsenodeids=[2, 1, 3, 5, 6], nodes_falseleafs=[1, 1, 0, 1, 1],
        nodes_missing_value_tracks_true=[1, 0, 0, 0, 0],
        membership_values=numpy_helper.from_array(np.array([1.0, 3.0, 5.0, np.nan])),
        leaf_targetids=[0, 1, 0, 1, 0, 1, 0],
        leaf_weights=numpy_helper.from_array(np.array([1.5, -2.0, 0.25, 4.0, -1.0, 3.0, 0.5])),
    )
    graph = helper.make_graph(
        [node], "categorical",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, ["N", 2])],
        [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, ["N", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)])
    onnx.checker.check_model(model)
    x0 = RNG.integers(0, 7, 200).astype(np.float64)
    x0[::17] = np.nan
    x1 = RNG.integers(-2, 6, 200) / 2.0
    return model, {"X": np.stack([x0, x1], axis=1)}


def linear_form_svm_classifier(classes, post_transform):
    """A hand-built SVMClassifier in its liblinear form (no support vectors): one weight row
    per class and one shared bias."""
    w = RNG.normal(size=(classes, 5)).astype(np.float32)
    node = helper.make_node(
        "SVMClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
        coefficients=w.ravel().tolist(), rho=[0.3], kernel_type="LINEAR", kernel_params=[0.0, 0.0, 0.0],
        classlabels_ints=list(range(10, 10 + classes)), post_transform=post_transform,
    )
    graph = helper.make_graph(
        [node], "linear_form",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 5])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    onnx.checker.check_model(model)
    return model, {"X": RNG.normal(size=(100, 5)).astype(np.float32)}


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)

    Xb, yb = make_classification(400, 20, n_informative=8, random_state=1)
    Xb = Xb.astype(np.float32)
    Xm, ym = make_classification(400, 10, n_informative=6, n_classes=3, random_state=2)
    Xm = Xm.astype(np.float32)
    Xr, yr = make_regression(400, 12, noise=5.0, random_state=3)
    Xr = Xr.astype(np.float32)
    Xr2, yr2 = make_regression(400, 6, n_targets=3, noise=1.0, random_state=4)
    Xr2 = Xr2.astype(np.float32)
    iris = load_iris()
    Xi = iris.data.astype(np.float32)
    yi = np.array(iris.target_names)[iris.target]

    export(out, "logreg_binary", LogisticRegression(max_iter=500).fit(Xb, yb), Xb)
    export(out, "logreg_multi", LogisticRegression(max_iter=500).fit(Xm, ym), Xm)
    export(out, "scaler_logreg", make_pipeline(StandardScaler(), LogisticRegression()).fit(Xb, yb), Xb)
    export(out, "minmax_logreg", make_pipeline(MinMaxScaler(), LogisticRegression()).fit(Xm, ym), Xm)
    export(out, "linear_svc", LinearSVC().fit(Xb, yb), Xb)
    export(out, "linear_svc_multi", LinearSVC().fit(Xm, ym), Xm)
    export(out, "normalizer_logreg", make_pipeline(Normalizer("l2"), LogisticRegression()).fit(Xm, ym), Xm)
    export(out, "binarizer_logreg", make_pipeline(Binarizer(threshold=0.2), LogisticRegression()).fit(Xb, yb), Xb)
    export(out, "linear_regression", LinearRegression().fit(Xr, yr), Xr)
    export(out, "ridge_multi_target", Ridge(alpha=0.5).fit(Xr2, yr2), Xr2)
    export(out, "tree_classifier", DecisionTreeClassifier(max_depth=6, random_state=0).fit(Xm, ym), Xm)
    export(out, "tree_regressor", DecisionTreeRegressor(max_depth=6, random_state=0).fit(Xr, yr), Xr)
    rf = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(Xb, yb)
    export(out, "forest_binary", rf, Xb)
    export(out, "forest_binary_no_zipmap", rf, Xb, options={id(rf): {"zipmap": False}})
    export(out, "forest_multi", RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0).fit(Xm, ym), Xm)
    export(out, "forest_string_labels", RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0).fit(Xi, yi), Xi)
    export(out, "forest_regressor", RandomForestRegressor(n_estimators=50, max_depth=8, random_state=0).fit(Xr, yr), Xr)
    export(out, "boosting_binary", GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0).fit(Xb, yb), Xb)
    export(out, "boosting_multi", GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0).fit(Xm, ym), Xm)
    export(out, "boosting_regressor", GradientBoostingRegressor(n_estimators=80, max_depth=4, random_state=0).fit(Xr, yr), Xr)
    export(out, "mlp_classifier", MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(Xm, ym), Xm)
    export(out, "kmeans", KMeans(n_clusters=4, n_init=3, random_state=0).fit(Xm), Xm)
    # Support-vector regressors, one per kernel, and a one-class model. Few support vectors
    # with small coefficients: onnxruntime sums the kernel terms in float, and large
    # cancelling terms would leave it (not keel, which sums in double) 1e-4 off.
    export(out, "svr_rbf", make_pipeline(StandardScaler(), SVR(C=3.0)).fit(Xr[:150], yr[:150]), Xr)
    export(out, "svr_linear", SVR(kernel="linear", C=1.0).fit(Xr[:80], yr[:80]), Xr)
    export(out, "svr_poly", make_pipeline(StandardScaler(), SVR(kernel="poly", degree=3, coef0=1.0, C=1.0)).fit(Xr[:80], yr[:80]), Xr)
    export(out, "nusvr_sigmoid", make_pipeline(StandardScaler(), NuSVR(kernel="sigmoid", gamma=0.01, C=10.0)).fit(Xr, yr), Xr)
    export(out, "one_class_svm", OneClassSVM(gamma=0.05, nu=0.1).fit(Xm), Xm)
    # Support-vector classifiers: one-vs-one decision values, votes and, with probability=True,
    # Platt-scaled pairwise probabilities coupled into class probabilities.
    export(out, "svc_binary", make_pipeline(StandardScaler(), SVC(C=1.0)).fit(Xb[:150], yb[:150]), Xb)
    export(out, "svc_binary_proba", make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)).fit(Xb[:150], yb[:150]), Xb)
    export(out, "svc_multi_poly", make_pipeline(StandardScaler(), SVC(kernel="poly", degree=2, coef0=1.0, C=0.5)).fit(Xm[:150], ym[:150]), Xm)
    export(out, "svc_multi_proba", make_pipeline(StandardScaler(), SVC(probability=True, random_state=0)).fit(Xm[:150], ym[:150]), Xm)
    export(out, "svc_string_labels", make_pipeline(StandardScaler(), SVC(kernel="linear", probability=True, random_state=0)).fit(Xi, yi), Xi)
    export(out, "nusvc_rbf", make_pipeline(StandardScaler(), NuSVC(nu=0.2)).fit(Xm[:100], ym[:100]), Xm)
    save(out, "svm_classifier_linear_form", *linear_form_svm_classifier(3, "SOFTMAX"))
    save(out, "svm_classifier_linear_binary", *linear_form_svm_classifier(2, "NONE"))

    # The opset-5 TreeEnsemble: skl2onnx's regressors rewritten, and categorical splits.
    for case, model in [
        ("tree_ensemble_forest", RandomForestRegressor(n_estimators=30, max_depth=6, random_state=0)),
        ("tree_ensemble_boosting", GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=0)),
    ]:
        proto = to_onnx(model.fit(Xr, yr), Xr[:1], target_opset={"": 21, "ai.onnx.ml": 3})
        save(out, case, tree_ensemble_v5(proto), {proto.graph.input[0].name: Xr})
    save(out, "tree_ensemble_categorical", *categorical_tree_ensemble())

    # Missing values imputed by the pipeline.
    Xn = Xr.copy()
    Xn[RNG.random(Xn.shape) < 0.1] = np.nan
    export(out, "imputer_forest", make_pipeline(SimpleImputer(), RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0)).fit(Xn, yr), Xn)

    # A text column one-hot encoded next to numeric columns: two inputs.
    cities = np.array(["paris", "rome", "oslo", "lima"])[RNG.integers(0, 4, 300)].reshape(-1, 1)
    nums = RNG.normal(size=(300, 3)).astype(np.float32)
    yc = (nums[:, 0] + (cities[:, 0] == "rome")) > 0.5
    ct = ColumnTransformer([("city", OneHotEncoder(handle_unknown="ignore"), [0]), ("num", StandardScaler(), [1, 2, 3])])
    pipe = make_pipeline(ct, LogisticRegression()).fit(np.hstack([cities, nums]).astype(object), yc)
    proto = to_onnx(
        pipe,
        initial_types=[("city", StringTensorType([None, 1])), ("num", FloatTensorType([None, 3]))],
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    # Not all of skl2onnx's converters take two inputs for one ColumnTransformer; rebuild the
    # feed to whatever inputs the graph declares.
    names = [i.name for i in proto.graph.input]
    cities_test = cities.copy()
    cities_test[:5, 0] = "tokyo"  # unknown category: all zeros
    save(out, "onehot_two_inputs", proto, dict(zip(names, [cities_test, nums])))

    # A graph of standard operators only, one of which keel's kernels lack: runs in tract.
    w = RNG.normal(size=(4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("LeakyRelu", ["h"], ["y"], alpha=0.1),
        ],
        "leaky",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor("w", TensorProto.FLOAT, [4, 3], w.ravel().tolist())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    save(out, "standard_ops_in_tract", model, {"x": RNG.normal(size=(50, 4)).astype(np.float32)})


if __name__ == "__main__":
    main()
