#!/usr/bin/env python3
"""Drives the official mlflow client against a tracking server (MLFLOW_TRACKING_URI) the way a
training script does, and checks every answer. Exits non-zero on the first failed check.

Runs unchanged against `keel server` and against `mlflow server --serve-artifacts`, so the
script itself is checked against the reference implementation.
"""

import json
import math
import os
import sys
import tempfile
import time
import uuid

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression

CHECKS = 0


def check(cond, what):
    global CHECKS
    if not cond:
        raise AssertionError(f"check failed: {what}")
    CHECKS += 1


def expect_error(code, fn, what):
    try:
        fn()
    except (MlflowException, RestException) as e:
        check(e.error_code == code, f"{what}: error_code {e.error_code!r} == {code!r} ({e})")
        return e
    raise AssertionError(f"check failed: {what}: no error raised")


def main():
    uri = os.environ["MLFLOW_TRACKING_URI"]
    suffix = uuid.uuid4().hex[:8]
    client = MlflowClient()
    exp_name = f"compat-{suffix}"
    exp_id = mlflow.set_experiment(exp_name).experiment_id
    check(client.get_experiment_by_name(exp_name).experiment_id == exp_id, "experiment by name")
    client.set_experiment_tag(exp_id, "team", "forecasting")
    check(client.get_experiment(exp_id).tags.get("team") == "forecasting", "experiment tag")

    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    df["label"] = y

    run_ids = []
    tmp = tempfile.mkdtemp()
    for i, lr in enumerate([0.1, 0.01, 0.001]):
        with mlflow.start_run(run_name=f"train-{i}") as run:
            run_ids.append(run.info.run_id)
            mlflow.log_param("lr", lr)
            mlflow.log_params({"layers": 3, "optimizer": "adam", "seed": i})
            mlflow.set_tag("stage", "dev" if i < 2 else "prod")
            mlflow.set_tags({"owner": "ana", "idx": str(i)})
            for step in range(20):
                mlflow.log_metric("loss", 1.0 / (step + 1) + i, step=step)
            mlflow.log_metrics({"acc": 0.5 + 0.1 * i, "f1": 0.4 + 0.1 * i})
            mlflow.log_metric("nan_metric", float("nan"))
            # Artifacts of several sizes, a folder, a dict and a text.
            for name, size in [("tiny.txt", 10), ("medium.bin", 200_000), ("large.bin", 6 * 1024 * 1024)]:
                p = os.path.join(tmp, f"{i}-{name}")
                with open(p, "wb") as f:
                    f.write(os.urandom(size) if name.endswith(".bin") else b"x" * size)
                mlflow.log_artifact(p, artifact_path="files")
            d = os.path.join(tmp, f"dir{i}")
            os.makedirs(os.path.join(d, "sub"), exist_ok=True)
            for rel in ["a.csv", "sub/b.csv"]:
                with open(os.path.join(d, rel), "w") as f:
                    f.write("x,y\n1,2\n")
            mlflow.log_artifacts(d, artifact_path="data")
            mlflow.log_dict({"lr": lr, "nested": {"k": [1, 2]}}, "config.json")
            mlflow.log_text(f"run {i} notes", "notes/readme.txt")
            dataset = mlflow.data.from_pandas(df, source="s3://bucket/train.csv", name="train", targets="label")
            mlflow.log_input(dataset, context="training")

    # Read everything back.
    r0 = client.get_run(run_ids[0])
    check(r0.data.params["lr"] == "0.1", "param read back")
    check(r0.data.params["layers"] == "3", "log_params read back")
    check(r0.data.tags["stage"] == "dev" and r0.data.tags["owner"] == "ana", "tags read back")
    check(r0.info.status == "FINISHED" and r0.info.end_time is not None, "run finished")
    check(r0.info.run_name == "train-0", "run name")
    check(abs(r0.data.metrics["loss"] - 1.0 / 20) < 1e-12, "latest metric is the last step")
    check(math.isnan(r0.data.metrics["nan_metric"]), "NaN metric survives")
    hist = client.get_metric_history(run_ids[0], "loss")
    check([m.step for m in hist] == list(range(20)), "metric history steps")
    check(all(abs(m.value - (1.0 / (m.step + 1))) < 1e-12 for m in hist), "metric history values")
    check(r0.info.artifact_uri.startswith("mlflow-artifacts:/"), "proxied artifact URI")
    check(len(r0.inputs.dataset_inputs) == 1, "dataset input logged")
    di = r0.inputs.dataset_inputs[0]
    check(di.dataset.name == "train" and di.dataset.digest == dataset.digest, "dataset name and digest")
    check(any(t.key == "mlflow.data.context" and t.value == "training" for t in di.tags), "dataset context tag")

    files = sorted(f.path for f in client.list_artifacts(run_ids[0]))
    check(files == ["config.json", "data", "files", "notes"], f"top-level artifacts {files}")
    sub = sorted(f.path for f in client.list_artifacts(run_ids[0], "files"))
    check(sub == ["files/0-large.bin", "files/0-medium.bin", "files/0-tiny.txt"], f"artifact listing {sub}")
    sizes = {f.path: f.file_size for f in client.list_artifacts(run_ids[0], "files")}
    check(sizes["files/0-large.bin"] == 6 * 1024 * 1024, "artifact size")
    local = mlflow.artifacts.download_artifacts(run_id=run_ids[0], artifact_path="files/0-large.bin")
    with open(local, "rb") as a, open(os.path.join(tmp, "0-large.bin"), "rb") as b:
        check(a.read() == b.read(), "large artifact round trip")
    whole = mlflow.artifacts.download_artifacts(run_id=run_ids[0], artifact_path="data")
    check(open(os.path.join(whole, "sub", "b.csv")).read() == "x,y\n1,2\n", "folder download")
    check(mlflow.artifacts.load_dict(f"runs:/{run_ids[0]}/config.json") == {"lr": 0.1, "nested": {"k": [1, 2]}}, "log_dict round trip")
    check(mlflow.artifacts.load_text(f"runs:/{run_ids[0]}/notes/readme.txt") == "run 0 notes", "log_text round trip")

    # Search: filters, ordering, paging.
    got = client.search_runs([exp_id], "metrics.acc > 0.55 and params.optimizer = 'adam'", order_by=["metrics.acc DESC"])
    check([r.info.run_id for r in got] == [run_ids[2], run_ids[1]], "filtered + ordered search")
    got = client.search_runs([exp_id], "tags.stage = 'prod'")
    check([r.info.run_id for r in got] == [run_ids[2]], "tag filter")
    got = client.search_runs([exp_id], "params.lr LIKE '0.0%'", order_by=["params.lr ASC"])
    check([r.info.run_id for r in got] == [run_ids[2], run_ids[1]], "LIKE filter, param order")
    got = client.search_runs([exp_id], "attributes.run_name ILIKE 'TRAIN-%'")
    check(len(got) == 3, "ILIKE on run name")
    got = client.search_runs([exp_id], f"attributes.run_id IN ('{run_ids[0]}', '{run_ids[2]}')")
    check(sorted(r.info.run_id for r in got) == sorted([run_ids[0], run_ids[2]]), "IN on run_id")
    got = client.search_runs([exp_id], "datasets.name = 'train' and datasets.context = 'training'")
    check(len(got) == 3, "dataset filter")
    page1 = client.search_runs([exp_id], order_by=["metrics.acc ASC"], max_results=2)
    check(len(page1) == 2 and page1.token, "first page has a token")
    page2 = client.search_runs([exp_id], order_by=["metrics.acc ASC"], max_results=2, page_token=page1.token)
    check([r.info.run_id for r in list(page1) + list(page2)] == run_ids, "paging in order")
    check(not page2.token, "last page has no token")
    df_runs = mlflow.search_runs(experiment_names=[exp_name], filter_string="metrics.f1 >= 0.5")
    check(len(df_runs) == 2, "mlflow.search_runs dataframe")
    exps = client.search_experiments(filter_string=f"name = '{exp_name}'")
    check(len(exps) == 1 and exps[0].experiment_id == exp_id, "search experiments by name")

    # Delete and restore.
    client.delete_run(run_ids[1])
    check(len(client.search_runs([exp_id])) == 2, "deleted run hidden")
    check(client.get_run(run_ids[1]).info.lifecycle_stage == "deleted", "deleted run readable")
    client.restore_run(run_ids[1])
    check(len(client.search_runs([exp_id])) == 3, "restored run visible")

    # Model: log, register, alias, tags, load back.
    model = LogisticRegression(max_iter=200).fit(X, y)
    reg_name = f"compat-model-{suffix}"
    with mlflow.start_run(run_name="model") as run:
        mlflow.log_param("C", 1.0)
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=reg_name, input_example=X[:3])
        model_run = run.info.run_id
    check(info.registered_model_version is not None and int(info.registered_model_version) == 1, "registered version 1")
    # The client registers `models:/<model id>` with the model id and no run id: the server
    # fills the run id from the logged model's source run and lists the version on the model.
    v1 = client.get_model_version(reg_name, "1")
    check(v1.run_id == model_run, f"version 1 names its run ({v1.run_id!r})")
    # MLflow's SQL store leaves a version's model_id unset; keel keeps it.
    check(v1.model_id in (info.model_id, None), "version 1's logged model")
    listed = json.loads(client.get_logged_model(info.model_id).tags.get("mlflow.modelVersions", "[]"))
    # The server lists the version (as a number); the client then appends it once more (as text).
    check({"name": reg_name, "version": 1} in listed, f"logged model lists version 1 ({listed})")
    client.set_registered_model_alias(reg_name, "champion", "1")
    mv = client.get_model_version_by_alias(reg_name, "champion")
    check(mv.version == "1", "alias resolves")
    client.set_model_version_tag(reg_name, "1", "validated", "yes")
    check(client.get_model_version(reg_name, "1").tags.get("validated") == "yes", "model version tag")
    client.set_registered_model_tag(reg_name, "domain", "churn")
    client.update_registered_model(reg_name, description="churn classifier")
    rm = client.get_registered_model(reg_name)
    check(rm.description == "churn classifier" and rm.tags.get("domain") == "churn", "registered model update and tag")
    check(rm.aliases.get("champion") == "1", "registered model aliases")
    expected = model.predict(X[:50])
    by_alias = mlflow.pyfunc.load_model(f"models:/{reg_name}@champion").predict(X[:50])
    by_version = mlflow.sklearn.load_model(f"models:/{reg_name}/1").predict(X[:50])
    check((np.asarray(by_alias) == expected).all(), "predictions via alias")
    check((by_version == expected).all(), "predictions via version")
    v2 = mlflow.register_model(f"runs:/{model_run}/model", reg_name)
    check(v2.version == "2", "second version from runs:/ URI")
    check(client.get_model_version(reg_name, "2").run_id == model_run, "runs:/ version names its run")
    # A version made from another version takes that version's run and model, canonically.
    v3 = client.create_model_version(reg_name, f"models:/{reg_name}@champion")
    check(v3.source == f"models:/{reg_name}/1", f"version source made canonical ({v3.source})")
    check(v3.run_id == model_run and v3.model_id == v1.model_id, "lineage from the source version")
    expect_error("INVALID_PARAMETER_VALUE",
                 lambda: client.create_model_version(reg_name, f"models:/{reg_name}/1", run_id=run_ids[0]),
                 "run id contradicting the source version")
    # A version made from a logged model is listed on it, in the text MLflow's server writes.
    listed_name = f"compat-listed-{suffix}"
    client.create_registered_model(listed_name)
    bare = client.create_logged_model(exp_id, name="bare")
    for _ in range(2):
        client.create_model_version(listed_name, bare.artifact_location, model_id=bare.model_id)
    tag = client.get_logged_model(bare.model_id).tags.get("mlflow.modelVersions")
    check(tag == f'[{{"name": "{listed_name}", "version": 1}}, {{"name": "{listed_name}", "version": 2}}]',
          f"mlflow.modelVersions as MLflow writes it ({tag})")
    # Sources that would let a registrant choose files the server reads are refused.
    for source, run_id in [
        ("mlflow-artifacts://host:9000/models/../../../", None),
        ("/etc", None),
        ("/etc", model_run),
        ("file:///etc", None),
        (f"runs:/{model_run}/model", run_ids[0]),
        (f"runs:/{model_run}/../../model", model_run),
        ("mlflow-artifacts:/0/elsewhere/artifacts/model", model_run),
    ]:
        expect_error("INVALID_PARAMETER_VALUE",
                     lambda: client.create_model_version(reg_name, source, run_id=run_id),
                     f"model version source {source!r} with run {run_id!r}")
    # A registry fed from another tracking server names runs this one does not have.
    foreign = "f" * 32
    v4 = client.create_model_version(reg_name, f"runs:/{foreign}/model", run_id=foreign)
    check(v4.run_id == foreign, "version of a run kept elsewhere")
    foreign_model = client.create_logged_model(exp_id, name="elsewhere", source_run_id=foreign)
    check(foreign_model.source_run_id == foreign, "logged model of a run kept elsewhere")
    client.delete_model_version(reg_name, "4")
    client.delete_model_version(reg_name, "3")
    versions = client.search_model_versions(f"name = '{reg_name}'")
    check(sorted(v.version for v in versions) == ["1", "2"], "search model versions")
    # MLflow's order: the latest update first, then name ascending and the newest version first;
    # an explicit order is followed by name ascending and the newest version first.
    order_names = [f"compat-order-{suffix}-{i}" for i in range(3)]
    for n in order_names:
        client.create_registered_model(n)
    for n in order_names + order_names[:2]:
        time.sleep(0.002)
        client.create_model_version(n, f"runs:/{foreign}/model", run_id=foreign)
    made = [(n, "1") for n in order_names] + [(n, "2") for n in order_names[:2]]
    mine = f"name LIKE 'compat-order-{suffix}-%'"
    got = [(v.name, v.version) for v in client.search_model_versions(mine)]
    check(got == made[::-1], f"model versions newest update first ({got})")
    got = [(v.name, v.version) for v in client.search_model_versions(mine, order_by=["name DESC"])]
    check(got == sorted(made, reverse=True), f"model versions by name, newest version first ({got})")
    models = client.search_registered_models(filter_string=f"name LIKE 'compat-model-{suffix}%'")
    check([m.name for m in models] == [reg_name], "search registered models")
    client.transition_model_version_stage(reg_name, "2", "Staging")
    latest = client.get_latest_versions(reg_name, stages=["Staging"])
    check([v.version for v in latest] == ["2"], "stages and latest versions")
    logged = mlflow.search_logged_models(experiment_ids=[exp_id], output_format="list")
    check(sorted(m.name for m in logged) == ["bare", "elsewhere", "model"], "logged models searchable")

    # Errors the client steers by.
    expect_error("RESOURCE_DOES_NOT_EXIST", lambda: client.get_run("0" * 32), "missing run")
    expect_error("INVALID_PARAMETER_VALUE", lambda: client.search_runs([exp_id], "metrics.acc >>> 1"), "bad filter")
    expect_error("INVALID_PARAMETER_VALUE", lambda: client.log_param(run_ids[0], "lr", "0.5"), "changing a param")
    expect_error("RESOURCE_ALREADY_EXISTS", lambda: client.create_experiment(exp_name), "duplicate experiment")
    expect_error("RESOURCE_DOES_NOT_EXIST", lambda: client.get_registered_model(f"nope-{suffix}"), "missing model")
    check(client.get_experiment_by_name(f"nope-{suffix}") is None, "missing experiment by name is None")

    print(f"compat: {CHECKS} checks passed against {uri}")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(str(e), file=sys.stderr)
        sys.exit(1)
