"""Models for the serving-format comparison, and what the reference runtimes answer on them.

usage: serving_references.py OUT_DIR

Writes, for each case, a model (a plain .onnx file or an MLflow model directory) and
OUT_DIR/<case>.json with:
  path      the model, relative to OUT_DIR
  kind      "matrix" (one positional [N, F] input) or "named" (one [N, 1] input per column)
  columns   the request's column names, in the order a client sends them (never alphabetical)
  model_columns  the order the model takes them in (what positional tensors must follow)
  types     "number" or "text" per column
  rows      the rows (null for a missing number)
  outputs   onnxruntime's answer on those rows, by output name: a list per row (a label, a
            list of values, or {"keys": [...], "values": [...]} for a ZipMap)
For MLflow model directories the script also predicts with mlflow.pyfunc on the same data
frame and fails unless it agrees with onnxruntime (labels equal, values within 1e-5), so the
reference is both runtimes' answer.
"""

import json
import sys
from pathlib import Path

import mlflow.onnx
import mlflow.pyfunc
import numpy as np
import onnxruntime as ort
import pandas as pd
from mlflow.models import infer_signature
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

OPSETS = {"": 17, "ai.onnx.ml": 3}
out = Path(sys.argv[1])
rng = np.random.default_rng(7)


def with_missing(frame, share, columns):
    """A copy of `frame` with `share` of the cells of `columns` set to NaN."""
    frame = frame.copy()
    for c in columns:
        frame.loc[rng.random(len(frame)) < share, c] = np.nan
    return frame


def run_ort(path, feed):
    """onnxruntime's outputs by name, each as one JSON value per row."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    values = sess.run(None, feed)
    result = {}
    for name, value in zip(names, values):
        if isinstance(value, list):  # ZipMap: one dict per row
            keys = list(value[0].keys())
            result[name] = [
                {"keys": [k if isinstance(k, str) else int(k) for k in keys],
                 "values": [float(row[k]) for k in keys]}
                for row in value
            ]
        else:
            result[name] = [v.tolist() for v in value]
    return result


def cell(v):
    if isinstance(v, (float, np.floating)) and np.isnan(v):
        return None
    return v.item() if hasattr(v, "item") else v


def agree(name, a, b):
    """Fails unless two answers (a list of rows of one output) agree."""
    assert len(a) == len(b), name
    for i, (x, y) in enumerate(zip(a, b)):
        if isinstance(x, dict):
            x, y = x["values"], y["values"]
        xs, ys = np.ravel(np.asarray(x, dtype=object)), np.ravel(np.asarray(y, dtype=object))
        for p, q in zip(xs, ys):
            if isinstance(p, str) or isinstance(q, str):
                assert str(p) == str(q), f"{name}[{i}]: {p} != {q}"
            else:
                assert abs(float(p) - float(q)) <= 1e-5 * max(1.0, abs(float(q))), f"{name}[{i}]"


def pyfunc_rows(model_dir, frame, outputs):
    """mlflow.pyfunc's answer in the same per-row form as `run_ort`."""
    predicted = mlflow.pyfunc.load_model(str(model_dir)).predict(frame)
    result = {}
    for name in outputs:
        column = predicted[name]
        rows = []
        for v in column:
            if isinstance(v, dict):
                keys = list(v.keys())
                rows.append({"keys": [k if isinstance(k, str) else int(k) for k in keys],
                             "values": [float(v[k]) for k in keys]})
            elif hasattr(v, "tolist"):
                rows.append(v.tolist())
            else:
                rows.append(v)
        result[name] = rows
    return result


def write(case, path, kind, frame, outputs, model_columns=None):
    record = {
        "path": path,
        "kind": kind,
        "columns": list(frame.columns),
        "model_columns": list(model_columns if model_columns is not None else frame.columns),
        "types": ["number" if pd.api.types.is_numeric_dtype(frame[c]) else "text" for c in frame.columns],
        "rows": [[cell(v) for v in row] for row in frame.itertuples(index=False)],
        "outputs": outputs,
    }
    (out / f"{case}.json").write_text(json.dumps(record))


# 1. Breast cancer: one positional input X of 30 floats (imputer, scaler, logistic
#    regression), as a plain .onnx file and as an MLflow directory with a tensor signature.
#    The feature names are far from alphabetical order, so a server that sorts them answers
#    differently.
cancer = load_breast_cancer(as_frame=True)
X = cancer.data.astype(np.float32)
assert list(X.columns) != sorted(X.columns)
pipe = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=2000))
pipe.fit(X.values, cancer.target)
onx = to_onnx(pipe, X.values[:1], target_opset=OPSETS, options={"zipmap": False})
(out / "cancer.onnx").write_bytes(onx.SerializeToString())
requests = with_missing(X.iloc[::23].reset_index(drop=True), 0.1, X.columns[:6])
feed = {"X": requests.values.astype(np.float32)}
expected = run_ort(out / "cancer.onnx", feed)
write("cancer_plain", "cancer.onnx", "matrix", requests, expected)
mlflow.onnx.save_model(
    onx,
    str(out / "cancer_mlflow"),
    signature=infer_signature(X.values[:5], pipe.predict(X.values[:5])),
)
by_pyfunc = pyfunc_rows(out / "cancer_mlflow", requests, expected.keys())
for name in expected:
    agree(f"cancer/{name}", by_pyfunc[name], expected[name])
write("cancer_mlflow", "cancer_mlflow", "matrix", requests, expected)

# 2. Iris with a column signature listed in a non-alphabetical order, a forest whose
#    probabilities come as a ZipMap: the signature, not the request, orders the columns.
iris = load_iris(as_frame=True)
frame = iris.data.astype(np.float32)
frame.columns = ["sepal_width", "petal_length", "sepal_length", "petal_width"]
forest = RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0)
forest.fit(frame.values, iris.target)
onx = to_onnx(forest, frame.values[:1], target_opset=OPSETS)
sample = with_missing(frame.iloc[::9].reset_index(drop=True), 0.15, ["petal_width", "sepal_width"])
mlflow.onnx.save_model(
    onx,
    str(out / "iris_mlflow"),
    signature=infer_signature(sample, forest.predict(sample.values)),
)
expected = run_ort(out / "iris_mlflow" / "model.onnx", {"X": sample.values})
by_pyfunc = pyfunc_rows(out / "iris_mlflow", sample, expected.keys())
for name in expected:
    agree(f"iris/{name}", by_pyfunc[name], expected[name])
# The request lists the columns in yet another order.
write("iris_signature", "iris_mlflow", "matrix",
      sample[["petal_width", "sepal_length", "sepal_width", "petal_length"]], expected,
      model_columns=frame.columns)

# 3. Named inputs: one [N, 1] input per column (two numbers with missing values, one text),
#    a column transformer and a logistic regression over three classes, ZipMap probabilities.
n = 300
people = pd.DataFrame({
    "tenure": rng.gamma(2.0, 12.0, n).astype(np.float32),
    "plan": rng.choice(["basic", "plus", "pro"], n).astype(object),
    "age": rng.normal(40, 12, n).astype(np.float32),
})
target = (people["tenure"] / 10 + (people["plan"] == "pro") * 2 + rng.normal(0, 1, n)).round().clip(0, 2).astype(int)
people = with_missing(people, 0.1, ["tenure", "age"])
transform = ColumnTransformer([
    ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), ["tenure", "age"]),
    ("text", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
])
model = make_pipeline(transform, LogisticRegression(max_iter=1000)).fit(people, target)
onx = to_onnx(
    model,
    initial_types=[
        ("tenure", FloatTensorType([None, 1])),
        ("plan", StringTensorType([None, 1])),
        ("age", FloatTensorType([None, 1])),
    ],
    target_opset=OPSETS,
)
(out / "people.onnx").write_bytes(onx.SerializeToString())
requests = people.iloc[::11].reset_index(drop=True)
# Sent as age, plan, tenure would be alphabetical; clients send them in this order.
requests = requests[["tenure", "plan", "age"]]
feed = {
    "tenure": requests[["tenure"]].values.astype(np.float32),
    "plan": requests[["plan"]].values.astype(object),
    "age": requests[["age"]].values.astype(np.float32),
}
expected = run_ort(out / "people.onnx", feed)
sklearn_labels = model.predict(requests)
assert [int(v) for v in sklearn_labels] == [int(v) for v in expected["output_label"]]
write("people_named", "people.onnx", "named", requests, expected)
