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
    x = np.array(exp["rows"], dtype=np.float32)
    s = ort.InferenceSession(f"{d}/model.onnx", providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    got = dict(zip(names, s.run(None, {"input": x})))
    for name, want in exp["outputs"].items():
        if name in ("label", "cluster"):
            assert list(got[name]) == want, (d, name, sum(a != b for a, b in zip(got[name], want)))
        else:
            diff = worst(got[name], want)
            assert diff <= 1e-5, (d, name, diff)
    mlflow.onnx.load_model(d)
    frame = pd.DataFrame(x.astype(np.float64), columns=exp["columns"])
    pred = mlflow.pyfunc.load_model(d).predict(frame)
    assert list(pred.columns) == names, (d, list(pred.columns))
    for name, want in exp["outputs"].items():
        if name == "cluster":
            assert list(pred[name]) == want, (d, name)
        elif name != "label":
            assert worst(pred[name].to_numpy(), want) <= 1e-5, (d, name)
    print(d, "ok", names)
