"""Saves MLflow models that keel serves through Python workers, with requests and the answers
MLflow itself gives them (mlflow.pyfunc.load_model(...).predict, written by MLflow's scoring
server's own JSON writer), for keel-serve's tests/python.rs.

Usage: python pyfunc_models.py OUT_DIR. Writes OUT_DIR/<name>/ (an MLflow model folder) and
OUT_DIR/<name>.json: {"rows": [...records...], "predictions": <MLflow's JSON answer>}.
"""

import json
import sys
import time
from io import StringIO
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc.scoring_server import predictions_to_json
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

out = Path(sys.argv[1])
rng = np.random.default_rng(7)
n = 200


def record(name, frame, requests):
    """Writes what MLflow answers for `requests` (a frame) with the model saved under `name`."""
    model = mlflow.pyfunc.load_model(str(out / name))
    result = StringIO()
    predictions_to_json(model.predict(requests), result)
    rows = requests.to_dict(orient="records")  # Python numbers: JSON keeps every digit
    (out / f"{name}.json").write_text(
        json.dumps({"rows": rows, "predictions": json.loads(result.getvalue())["predictions"]})
    )


# A pipeline over mixed columns: scaled numbers, one-hot text, a logistic regression.
frame = pd.DataFrame(
    {
        "size": rng.normal(10, 3, n),
        "rooms": rng.integers(1, 6, n),
        "colour": rng.choice(["red", "green", "blue"], n),
    }
)
target = ((frame["size"] + 2 * frame["rooms"] + (frame["colour"] == "red") * 3) > 17).astype(int)
pipeline = Pipeline(
    [
        (
            "prep",
            ColumnTransformer(
                [("num", StandardScaler(), ["size", "rooms"]), ("cat", OneHotEncoder(), ["colour"])]
            ),
        ),
        ("model", LogisticRegression()),
    ]
).fit(frame, target)
mlflow.sklearn.save_model(
    pipeline,
    out / "pipeline",
    signature=infer_signature(frame, pipeline.predict(frame)),
    input_example=frame.head(3),
)
record("pipeline", frame, frame.head(40))

# A random forest on four numbers.
x = pd.DataFrame(rng.normal(size=(n, 4)), columns=["a", "b", "c", "d"])
y = x["a"] * 3 - x["b"] + np.sin(x["c"]) + rng.normal(scale=0.1, size=n)
forest = RandomForestRegressor(n_estimators=50, max_depth=8, random_state=0).fit(x, y)
trees = ["sklearn.tree._tree.Tree"]
mlflow.sklearn.save_model(
    forest,
    out / "forest",
    signature=infer_signature(x, forest.predict(x)),
    skops_trusted_types=trees,
)
record("forest", x, x.head(40))

# Gradient boosting with text labels.
labels = np.where(x["a"] + x["d"] > 0, "yes", "no")
boosting = GradientBoostingClassifier(n_estimators=30, random_state=0).fit(x, labels)
mlflow.sklearn.save_model(
    boosting,
    out / "boosting",
    signature=infer_signature(x, boosting.predict(x)),
    skops_trusted_types=trees + ["sklearn._loss.link.LogitLink", "sklearn._loss.loss.HalfBinomialLoss", "sklearn.dummy.DummyClassifier"],
)
record("boosting", x, x.head(40))

# XGBoost and LightGBM through their own MLflow flavors.
import lightgbm
import mlflow.lightgbm
import mlflow.xgboost
import xgboost

xgb = xgboost.XGBClassifier(n_estimators=20, max_depth=4, random_state=0).fit(x, (labels == "yes").astype(int))
mlflow.xgboost.save_model(xgb, out / "xgboost", signature=infer_signature(x, xgb.predict(x)))
record("xgboost", x, x.head(40))
lgbm = lightgbm.LGBMRegressor(n_estimators=30, num_leaves=8, random_state=0, verbose=-1).fit(x, y)
mlflow.lightgbm.save_model(lgbm, out / "lightgbm", signature=infer_signature(x, lgbm.predict(x)))
record("lightgbm", x, x.head(40))


class Scorer(mlflow.pyfunc.PythonModel):
    """Pre-processing (a log, a ratio), a score and a label; answers a data frame. An amount of
    -1 raises and one of -2 sleeps for 5 seconds, for the tests of models that fail."""

    def predict(self, context, model_input, params=None):
        if (model_input["amount"] == -1).any():
            raise ValueError("amount must not be -1")
        if (model_input["amount"] == -2).any():
            time.sleep(5)
        ratio = np.log1p(model_input["amount"].clip(lower=0)) / model_input["items"].clip(lower=1)
        score = 1 / (1 + np.exp(-(ratio - 1.5)))
        label = np.where(model_input["member"], "vip", np.where(score > 0.5, "high", "low"))
        return pd.DataFrame({"score": score, "label": label})


scorer_frame = pd.DataFrame(
    {
        "amount": rng.gamma(2, 50, n).round(2),
        "items": rng.integers(1, 9, n),
        "member": rng.random(n) < 0.3,
        "region": rng.choice(["north", "south"], n),
    }
)
mlflow.pyfunc.save_model(
    out / "scorer",
    python_model=Scorer(),
    signature=infer_signature(scorer_frame, Scorer().predict(None, scorer_frame)),
)
record("scorer", scorer_frame, scorer_frame.head(40))


class Embedder(mlflow.pyfunc.PythonModel):
    """A tensor model: a [N, 3] float32 array in, a [N, 2] array out."""

    def predict(self, context, model_input, params=None):
        x = np.asarray(model_input, dtype=np.float32)
        return np.stack([x.sum(axis=1), (x * x).sum(axis=1)], axis=1)


tensor = rng.normal(size=(n, 3)).astype(np.float32)
mlflow.pyfunc.save_model(
    out / "embedder",
    python_model=Embedder(),
    signature=infer_signature(tensor, Embedder().predict(None, tensor)),
)
model = mlflow.pyfunc.load_model(str(out / "embedder"))
result = StringIO()
predictions_to_json(model.predict(tensor[:20]), result)
(out / "embedder.json").write_text(
    json.dumps({"tensor": tensor[:20].tolist(), "predictions": json.loads(result.getvalue())["predictions"]})
)

# A model without a signature, which keel refuses.
mlflow.sklearn.save_model(forest, out / "unsigned", skops_trusted_types=trees)
