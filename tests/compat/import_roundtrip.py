"""Data for the `keel import --from-mlflow` test, and the check that keel holds the same.

    python import_roundtrip.py log URI           # log a realistic tracking history into URI
    python import_roundtrip.py check SRC DST     # compare everything in DST with SRC

Uses only the official mlflow client. `check` exits non-zero on the first difference and prints
what it compared.
"""

import math
import os
import sys
import tempfile

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import ViewType


def log(uri):
    mlflow.set_tracking_uri(uri)
    rng = np.random.default_rng(7)
    mlflow.set_experiment("churn")
    mlflow.set_experiment_tag("team", "growth")
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            with mlflow.start_run(run_name=f"trial-{i}") as run:
                mlflow.log_params({"lr": 0.1 * (i + 1), "depth": 3 + i, "algo": "gbm"})
                mlflow.set_tags({"stage": "dev", "trial": str(i)})
                for step in range(25):
                    mlflow.log_metric("loss", float(1.0 / (step + 1) + i), step=step)
                    mlflow.log_metric("acc", float(0.5 + step / 60), step=step)
                mlflow.log_metric("odd", float("nan"))
                path = os.path.join(tmp, f"report-{i}.txt")
                with open(path, "w") as f:
                    f.write(f"trial {i}\n" * 100)
                mlflow.log_artifact(path)
                mlflow.log_dict({"trial": i, "features": ["a", "b"]}, "config/params.json")
                big = os.path.join(tmp, f"weights-{i}.bin")
                with open(big, "wb") as f:
                    f.write(rng.bytes(3 * 1024 * 1024 + i))
                mlflow.log_artifact(big, artifact_path="weights")
        # A dataset input, a registered model with two versions, an alias, tags, a stage.
        import pandas as pd
        from sklearn.linear_model import LogisticRegression

        X = pd.DataFrame(rng.normal(size=(200, 4)), columns=["f0", "f1", "f2", "f3"])
        y = (X["f0"] + X["f1"] > 0).astype(int)
        for version in range(2):
            with mlflow.start_run(run_name=f"train-{version}") as run:
                mlflow.log_input(mlflow.data.from_pandas(X, name="customers"), context="training")
                model = LogisticRegression(C=1.0 + version).fit(X, y)
                mlflow.log_param("C", 1.0 + version)
                mlflow.log_metric("auc", 0.9 + version / 100)
                mlflow.sklearn.log_model(
                    model, name="model", registered_model_name="churn-model", input_example=X.head(3)
                )
        client = MlflowClient()
        client.set_registered_model_tag("churn-model", "owner", "growth")
        client.update_registered_model("churn-model", description="predicts churn")
        client.set_model_version_tag("churn-model", "1", "validated", "true")
        client.set_registered_model_alias("churn-model", "champion", "2")
        client.transition_model_version_stage("churn-model", "1", "Archived")
        # A second experiment with a deleted run.
        mlflow.set_experiment("scratch")
        with mlflow.start_run(run_name="oops") as run:
            mlflow.log_param("x", 1)
        client.delete_run(run.info.run_id)
    print("logged")


def fail(msg):
    print(f"DIFFERENCE: {msg}")
    sys.exit(1)


def same(what, a, b):
    if a != b:
        fail(f"{what}: source {a!r} != keel {b!r}")


def files(client, run_id, path=None):
    out = {}
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            out.update(files(client, run_id, f.path))
        else:
            out[f.path] = f.file_size
    return out


def metric_values(ms):
    return sorted(
        (m.step, m.timestamp, "nan" if math.isnan(m.value) else m.value) for m in ms
    )


def check(src_uri, dst_uri):
    src, dst = MlflowClient(src_uri), MlflowClient(dst_uri)
    checked = {"runs": 0, "metric values": 0, "artifact files": 0, "versions": 0}
    src_exps = {e.name: e for e in src.search_experiments(view_type=ViewType.ALL)}
    dst_exps = {e.name: e for e in dst.search_experiments(view_type=ViewType.ALL)}
    same("experiments", sorted(src_exps), sorted(dst_exps))
    for name, se in src_exps.items():
        de = dst_exps[name]
        same(f"experiment {name} stage", se.lifecycle_stage, de.lifecycle_stage)
        same(f"experiment {name} tags", se.tags, de.tags)
        src_runs = {r.info.run_id: r for r in src.search_runs([se.experiment_id], run_view_type=ViewType.ALL)}
        dst_runs = {r.info.run_id: r for r in dst.search_runs([de.experiment_id], run_view_type=ViewType.ALL)}
        same(f"runs of {name}", sorted(src_runs), sorted(dst_runs))
        for run_id, sr in src_runs.items():
            dr = dst_runs[run_id]
            for field in ("run_name", "status", "start_time", "end_time", "lifecycle_stage", "user_id"):
                same(f"run {run_id} {field}", getattr(sr.info, field), getattr(dr.info, field))
            same(f"run {run_id} params", sr.data.params, dr.data.params)
            same(f"run {run_id} tags", sr.data.tags, dr.data.tags)
            same(f"run {run_id} metric keys", sorted(sr.data.metrics), sorted(dr.data.metrics))
            for key in sr.data.metrics:
                a = metric_values(src.get_metric_history(run_id, key))
                b = metric_values(dst.get_metric_history(run_id, key))
                same(f"run {run_id} history of {key}", a, b)
                checked["metric values"] += len(a)
            same(
                f"run {run_id} datasets",
                sorted((d.dataset.name, d.dataset.digest, d.dataset.source_type) for d in sr.inputs.dataset_inputs),
                sorted((d.dataset.name, d.dataset.digest, d.dataset.source_type) for d in dr.inputs.dataset_inputs),
            )
            if sr.info.lifecycle_stage == "active":
                sf, df = files(src, run_id), files(dst, run_id)
                same(f"run {run_id} artifacts", sf, df)
                with tempfile.TemporaryDirectory() as tmp:
                    for path in sf:
                        a = open(src.download_artifacts(run_id, path, os.path.join(tmp, "a")), "rb").read()
                        b = open(dst.download_artifacts(run_id, path, os.path.join(tmp, "b")), "rb").read()
                        same(f"run {run_id} artifact {path} bytes", a, b)
                        checked["artifact files"] += 1
            checked["runs"] += 1
    src_models = {m.name: m for m in src.search_registered_models()}
    dst_models = {m.name: m for m in dst.search_registered_models()}
    same("registered models", sorted(src_models), sorted(dst_models))
    for name, sm in src_models.items():
        dm = dst_models[name]
        same(f"model {name} description", sm.description, dm.description)
        same(f"model {name} tags", sm.tags, dm.tags)
        same(f"model {name} aliases", sm.aliases, dm.aliases)
        sv = {v.version: v for v in src.search_model_versions(f"name = '{name}'")}
        dv = {v.version: v for v in dst.search_model_versions(f"name = '{name}'")}
        same(f"model {name} versions", sorted(sv), sorted(dv))
        for v, a in sv.items():
            b = dv[v]
            for field in ("source", "run_id", "current_stage", "status", "tags", "creation_timestamp", "model_id"):
                same(f"model {name} v{v} {field}", getattr(a, field), getattr(b, field))
            checked["versions"] += 1
    # The champion loads from keel and predicts what it predicts in MLflow.
    import pandas as pd

    X = pd.DataFrame(np.random.default_rng(1).normal(size=(20, 4)), columns=["f0", "f1", "f2", "f3"])
    mlflow.set_tracking_uri(src_uri)
    a = mlflow.pyfunc.load_model("models:/churn-model@champion").predict(X)
    mlflow.set_tracking_uri(dst_uri)
    b = mlflow.pyfunc.load_model("models:/churn-model@champion").predict(X)
    same("champion predictions", list(a), list(b))
    print("identical:", ", ".join(f"{n} {k}" for k, n in checked.items()))


if __name__ == "__main__":
    if sys.argv[1] == "log":
        log(sys.argv[2])
    elif sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")
