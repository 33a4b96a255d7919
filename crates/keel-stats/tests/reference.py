"""Computes scipy's and scikit-learn's answers for the cases keel's statistics test sends on
stdin (JSON).

Each case is {"kind": ..., ...}; the answer list on stdout has one object per case.
"""
import json
import sys

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import binomtest, chi2_contingency, ks_2samp, ttest_ind, ttest_rel, wasserstein_distance
from sklearn import metrics as skm

out = []
for case in json.load(sys.stdin):
    kind = case["kind"]
    if kind == "ks":
        r = ks_2samp(case["a"], case["b"])
        out.append({"statistic": float(r.statistic), "pvalue": float(r.pvalue)})
    elif kind == "wasserstein":
        out.append({"distance": float(wasserstein_distance(case["a"], case["b"]))})
    elif kind == "jensenshannon":
        out.append({"distance": float(jensenshannon(case["p"], case["q"]))})
    elif kind == "chi2":
        r = chi2_contingency(np.array(case["table"], dtype=float))
        out.append({"statistic": float(r.statistic), "pvalue": float(r.pvalue), "dof": int(r.dof)})
    elif kind == "mcnemar":
        b, c = case["b"], case["c"]
        p = binomtest(c, b + c, 0.5, alternative="greater").pvalue if b + c > 0 else 1.0
        out.append({"pvalue": float(p)})
    elif kind == "ttest_rel":
        r = ttest_rel(case["a"], case["b"], alternative="greater")
        out.append({"statistic": float(r.statistic), "pvalue": float(r.pvalue)})
    elif kind == "ttest_welch":
        r = ttest_ind(case["a"], case["b"], equal_var=False, alternative="greater")
        out.append({"statistic": float(r.statistic), "pvalue": float(r.pvalue)})
    elif kind == "classification":
        y, proba, k = np.array(case["y"]), np.array(case["proba"]), case["n_classes"]
        pred = proba.argmax(axis=1)
        average = "binary" if k == 2 else "macro"
        if k == 2:
            auc = skm.roc_auc_score(y, proba[:, 1])
        else:
            auc = skm.roc_auc_score(y, proba, multi_class="ovr", average="macro")
        out.append({
            "accuracy": skm.accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred, average=average, zero_division=0),
            "recall": skm.recall_score(y, pred, average=average, zero_division=0),
            "f1": skm.f1_score(y, pred, average=average, zero_division=0),
            "roc_auc": float(auc),
            "log_loss": skm.log_loss(y, proba, labels=list(range(k))),
            "confusion": skm.confusion_matrix(y, pred, labels=list(range(k))).tolist(),
        })
    elif kind == "regression":
        t, p = case["y_true"], case["y_pred"]
        out.append({
            "rmse": float(np.sqrt(skm.mean_squared_error(t, p))),
            "mae": skm.mean_absolute_error(t, p),
            "r2": skm.r2_score(t, p),
            "mape": skm.mean_absolute_percentage_error(t, p),
        })
    else:
        raise SystemExit(f"unknown case kind {kind}")
json.dump(out, sys.stdout)
