#!/usr/bin/env python3
"""Side-by-side training benchmark: `keel train` vs scikit-learn on the same rows.

Two generated problems of 50,000 training rows x 20 features, each with 10,000 more rows held
out as a separate test set (both tools fit on the same training rows and are scored on the
same test rows, read from the same CSV files):

- classification: `make_classification(n_informative=10, n_redundant=5, random_state=0)`, the
  shared fixture's recipe; quality is ROC AUC.
- regression: `make_friedman1(noise=1, random_state=0)` (5 informative features, 15 noise);
  quality is RMSE.

Algorithms: logistic regression (scikit-learn: StandardScaler + LogisticRegression, as keel
standardises for it) or least squares, a random forest of 100 trees of depth 8, and
histogram gradient boosting with default parameters (early stopping on, as both libraries do
above 10,000 rows). Forests and boosting run on 1 and on 2 threads (`n_jobs`; scikit-learn's
OpenMP and BLAS threads limited with threadpoolctl). Fit time is the median of `--repeats`
fits: scikit-learn's `fit()`, keel's `fit_seconds` (pipeline and model; `keel train` also
reads the data, evaluates and records the run, shown as wall time).

    python bench/train_compare.py [--keel target/release/keel] [--repeats 3] [--out results.json]

Needs scikit-learn, pandas and threadpoolctl. Everything runs under a temporary folder.
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
import pandas as pd
from sklearn.datasets import make_classification, make_friedman1
from sklearn.ensemble import (HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import mean_squared_error, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
N_TRAIN, N_TEST, N_FEAT = 50_000, 10_000, 20


def write_problems(d):
    X, y = make_classification(n_samples=N_TRAIN + N_TEST, n_features=N_FEAT, n_informative=10,
                               n_redundant=5, random_state=0)
    Xr, yr = make_friedman1(n_samples=N_TRAIN + N_TEST, n_features=N_FEAT, noise=1.0, random_state=0)
    cols = [f"f{i}" for i in range(N_FEAT)]
    for name, X, y in [("clf", X, y), ("reg", Xr, yr)]:
        df = pd.DataFrame(X, columns=cols)
        df["target"] = y
        df[:N_TRAIN].to_csv(os.path.join(d, f"{name}_train.csv"), index=False, float_format="%.6g")
        df[N_TRAIN:].to_csv(os.path.join(d, f"{name}_test.csv"), index=False, float_format="%.6g")


def sklearn_model(task, algo, threads):
    clf = task == "classification"
    if algo == "linear":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)) if clf else LinearRegression()
    if algo == "random_forest":
        cls = RandomForestClassifier if clf else RandomForestRegressor
        return cls(n_estimators=100, max_depth=8, n_jobs=threads, random_state=0)
    cls = HistGradientBoostingClassifier if clf else HistGradientBoostingRegressor
    return cls(random_state=0)


def quality(task, y, pred):
    if task == "classification":
        return roc_auc_score(y, pred)
    return float(np.sqrt(mean_squared_error(y, pred)))


def sklearn_run(d, name, task, algo, threads, repeats):
    train = pd.read_csv(os.path.join(d, f"{name}_train.csv"))
    test = pd.read_csv(os.path.join(d, f"{name}_test.csv"))
    X, y = train.drop(columns="target").to_numpy(), train["target"].to_numpy()
    Xt, yt = test.drop(columns="target").to_numpy(), test["target"].to_numpy()
    times = []
    with threadpool_limits(threads):
        for _ in range(repeats):
            m = sklearn_model(task, algo, threads)
            t = time.perf_counter()
            m.fit(X, y)
            times.append(time.perf_counter() - t)
    pred = m.predict_proba(Xt)[:, 1] if task == "classification" else m.predict(Xt)
    return {"fit_s": statistics.median(times), "fits": times, "quality": quality(task, yt, pred)}


def keel_run(keel, d, name, task, algo, threads, repeats):
    keel_algo = {"linear": "logistic_regression" if task == "classification" else "linear_regression"}.get(algo, algo)
    args = [keel, "train", "--data", f"{name}_train@1", "--test-data", f"{name}_test@1", "--target", "target",
            "--task", task, "--algo", keel_algo, "--experiment", "bench", "--json"]
    if algo == "random_forest":
        args += ["--param", "n_estimators=100", "--param", "max_depth=8"]
    if algo != "linear":
        args += ["--param", f"n_jobs={threads}"]
    fits, walls = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        out = subprocess.run(args, cwd=d, capture_output=True, text=True)
        walls.append(time.perf_counter() - t)
        if out.returncode != 0:
            raise SystemExit(f"keel train failed: {out.stderr}")
        res = json.loads(out.stdout)
        fits.append(res["metrics"]["fit_seconds"])
    q = res["metrics"]["roc_auc" if task == "classification" else "rmse"]
    return {"fit_s": statistics.median(fits), "fits": fits, "wall_s": statistics.median(walls), "quality": q}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keel", default=os.path.join(ROOT, "target", "release", "keel"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out")
    a = ap.parse_args()
    keel = os.path.abspath(a.keel)
    rows = []
    with tempfile.TemporaryDirectory(prefix="keel-train-bench-") as d:
        write_problems(d)
        for f in ["clf_train.csv", "clf_test.csv", "reg_train.csv", "reg_test.csv"]:
            subprocess.run([keel, "data", "add", f, "--json"], cwd=d, check=True, capture_output=True)
        for name, task in [("clf", "classification"), ("reg", "regression")]:
            for algo in ["linear", "random_forest", "gradient_boosting"]:
                for threads in ([1] if algo == "linear" else [1, 2]):
                    s = sklearn_run(d, name, task, algo, threads, a.repeats)
                    k = keel_run(keel, d, name, task, algo, threads, a.repeats)
                    row = {"task": task, "algo": algo, "threads": threads, "sklearn": s, "keel": k}
                    rows.append(row)
                    metric = "AUC" if task == "classification" else "RMSE"
                    print(f"{task:14} {algo:17} {threads}t  fit sklearn {s['fit_s']:7.3f} s  keel {k['fit_s']:7.3f} s"
                          f" ({s['fit_s'] / k['fit_s']:5.1f}x; keel train wall {k['wall_s']:.2f} s)  {metric} sklearn"
                          f" {s['quality']:.4f}  keel {k['quality']:.4f}", flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
