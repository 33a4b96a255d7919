"""Saves an MLflow model directory with the onnx flavor (what `mlflow.onnx.log_model` stores)
and what MLflow's pyfunc predicts with it.

usage: mlflow_onnx_model.py OUT_DIR

Writes OUT_DIR/model (a scaler + logistic regression pipeline exported by skl2onnx, with a
signature and an input example) and OUT_DIR/expected.json: the data frame sent (`split`) and
`mlflow.pyfunc.load_model(...).predict(frame)` as records.
"""

import json
import sys
from pathlib import Path

import mlflow.onnx
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

out = Path(sys.argv[1])
iris = load_iris(as_frame=True)
frame = iris.data.astype(np.float32)
frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame.values, iris.target)
onnx_model = to_onnx(pipe, frame.values[:1], target_opset={"": 17, "ai.onnx.ml": 3})
sample = frame.iloc[::7].reset_index(drop=True)
mlflow.onnx.save_model(
    onnx_model,
    str(out / "model"),
    input_example=sample.head(3),
    signature=infer_signature(sample, pipe.predict(sample.values)),
)
predicted = mlflow.pyfunc.load_model(str(out / "model")).predict(sample)


def plain(v):
    if isinstance(v, dict):
        return {str(k): float(x) for k, x in v.items()}
    return v.item() if hasattr(v, "item") else v


records = [{c: plain(row[c]) for c in predicted.columns} for _, row in predicted.iterrows()]
split = {"columns": list(sample.columns), "data": sample.values.tolist()}
(out / "expected.json").write_text(json.dumps({"split": split, "records": records}))
