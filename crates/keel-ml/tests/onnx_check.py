"""Checks keel's ONNX export: for each model directory given, onnxruntime's outputs on the
rows in expected.json equal keel's predictions within 1e-5 (relative to the value above 1:
ONNX outputs are float32, about 7 significant digits), and MLflow loads the directory through
mlflow.onnx and mlflow.pyfunc and predicts the same from a DataFrame."""
import json
import sys

import mlflow.onnx
import mlflow.pyfunc
import numpy as np
import onnxruntime as ort
import pandas as pd



def worst(got, want):
    """Largest difference, relative to the expected value where it is above 1."""
    got, want = np.asarray(got, dtype=np.float64).reshape(-1), np.asarray(want, dtype=np.float64)
    return float((np.abs(got - want) / np.maximum(1.0, np.abs(want))).max())


for d in sys.argv[1:]:
    exp = json.load(open(f"{d}/expected.json"))
    s = ort.InferenceSession(f"{d}/model.onnx", providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    inputs = s.get_inputs()
    if [i.name for i in inputs] == ["input"]:
        # Numbers only: one matrix (None becomes NaN).
        x = np.array(exp["rows"], dtype=np.float32)
        feed = {"input": x}
        frame = pd.DataFrame(x.astype(np.float64), columns=exp["columns"])
    else:
        # One input per column: text as strings (missing as ""), numbers as float32.
        feed = {}
        for j, i in enumerate(inputs):
            assert i.name == exp["columns"][j], (d, i.name)
            values = [row[j] for row in exp["rows"]]
            if i.type == "tensor(string)":
                feed[i.name] = np.array(["" if v is None else v for v in values], dtype=object)
            else:
                feed[i.name] = np.array([np.nan if v is None else v for v in values], dtype=np.float32)
        # Text as object columns: MLflow's onnx flavor hands a column's `.values` to
        # onnxruntime, which takes numpy arrays, not pandas' own string arrays.
        frame = pd.DataFrame({c: pd.Series(feed[c], dtype=object) if feed[c].dtype == object
                              else feed[c].astype(np.float64) for c in exp["columns"]})
    got = dict(zip(names, s.run(None, feed)))
    for name, want in exp["outputs"].items():
        if name in ("label", "cluster"):
            assert list(got[name]) == want, (d, name, sum(a != b for a, b in zip(got[name], want)))
        else:
            diff = worst(got[name], want)
            assert diff <= 1e-5, (d, name, diff)
    mlflow.onnx.load_model(d)
    pred = mlflow.pyfunc.load_model(d).predict(frame)
    assert list(pred.columns) == names, (d, list(pred.columns))
    want_labels = exp["outputs"].get("label")
    if want_labels and isinstance(want_labels[0], int):
        # An integer target's labels come back as integers, equal to keel's.
        assert pred["label"].dtype.kind == "i", (d, pred["label"].dtype)
        assert list(pred["label"]) == want_labels, (d, "label")
    for name, want in exp["outputs"].items():
        if name == "cluster":
            assert list(pred[name]) == want, (d, name)
        elif name != "label":
            assert worst(pred[name].to_numpy(), want) <= 1e-5, (d, name)
    print(d, "ok", names)
