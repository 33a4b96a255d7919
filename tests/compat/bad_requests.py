#!/usr/bin/env python3
"""Sends the same bad requests to keel and to MLflow's own server and checks that both answer
with the same HTTP status and `error_code`: missing fields, wrong types, unknown ids, limits.

usage: bad_requests.py KEEL_URL MLFLOW_URL

Each server first gets an experiment, a run and a registered model of its own ({exp}, {run},
{model} in the table below stand for them). Prints one line per request and exits non-zero
when any answer differs.
"""

import json
import sys
import uuid

import requests

API = "/api/2.0/mlflow/"
LONG = "x" * 6001

# (what, method, endpoint, query or JSON body[, keel's answer where it differs on purpose])
CASES = [
    ("experiment without a name", "POST", "experiments/create", {}),
    ("experiment name of the wrong type", "POST", "experiments/create", {"name": 123}),
    ("unknown experiment", "GET", "experiments/get", {"experiment_id": "987654321"}),
    ("experiment by unknown name", "GET", "experiments/get-by-name", {"experiment_name": "nope-{uid}"}),
    ("duplicate experiment", "POST", "experiments/create", {"name": "bad-requests-{uid}"}),
    ("deleting an unknown experiment", "POST", "experiments/delete", {"experiment_id": "987654321"}),
    ("unknown run", "GET", "runs/get", {"run_id": "0" * 32}),
    ("run in an unknown experiment", "POST", "runs/create", {"experiment_id": "987654321"}),
    ("metric for an unknown run", "POST", "runs/log-metric",
     {"run_id": "0" * 32, "key": "m", "value": 1, "timestamp": 1}),
    ("metric without a key", "POST", "runs/log-metric", {"run_id": "{run}", "value": 1, "timestamp": 1}),
    ("metric value of the wrong type", "POST", "runs/log-metric",
     {"run_id": "{run}", "key": "m", "value": "high", "timestamp": 1}),
    ("param value too long (both cut it to 6,000 characters)", "POST", "runs/log-parameter",
     {"run_id": "{run}", "key": "p", "value": LONG}),
    ("too many metrics in a batch", "POST", "runs/log-batch",
     {"run_id": "{run}", "metrics": [{"key": f"m{i}", "value": 1, "timestamp": 1, "step": 0} for i in range(1001)]}),
    ("a param changed", "POST", "runs/log-parameter", {"run_id": "{run}", "key": "fixed", "value": "2"}),
    # MLflow drops an unknown status and answers 200 with the run unchanged; keel says why it
    # cannot apply it.
    ("run status unknown", "POST", "runs/update", {"run_id": "{run}", "status": "SLEEPING"},
     (400, "INVALID_PARAMETER_VALUE")),
    ("search with a bad filter", "POST", "runs/search", {"experiment_ids": ["{exp}"], "filter": "metrics.a >>> 1"}),
    ("search for too many runs", "POST", "runs/search", {"experiment_ids": ["{exp}"], "max_results": 50001}),
    ("history of an unknown run (empty for both)", "GET", "metrics/get-history",
     {"run_id": "0" * 32, "metric_key": "m"}),
    ("registered model without a name", "POST", "registered-models/create", {}),
    ("duplicate registered model", "POST", "registered-models/create", {"name": "{model}"}),
    ("unknown registered model", "GET", "registered-models/get", {"name": "nope-{uid}"}),
    ("unknown model version", "GET", "model-versions/get", {"name": "{model}", "version": "7"}),
    ("version of an unknown model", "POST", "model-versions/create", {"name": "nope-{uid}", "source": "s3://b/m"}),
    ("version sourced from a local folder", "POST", "model-versions/create", {"name": "{model}", "source": "/etc"}),
    ("version source with '..'", "POST", "model-versions/create",
     {"name": "{model}", "source": "mlflow-artifacts://host:9000/models/../../../"}),
    ("runs:/ source of another run", "POST", "model-versions/create",
     {"name": "{model}", "source": "runs:/{run}/model", "run_id": "1" * 32}),
    ("reserved alias", "POST", "registered-models/alias", {"name": "{model}", "alias": "latest", "version": "1"}),
    ("alias of an unknown model", "GET", "registered-models/alias", {"name": "nope-{uid}", "alias": "champion"}),
]


def fill(value, ids):
    """The case's body or query with the server's own ids put in."""
    text = json.dumps(value)
    for key, v in ids.items():
        text = text.replace("{" + key + "}", v)
    return json.loads(text)


def setup(base, uid):
    """An experiment, a run with a param, and a registered model on one server."""
    def post(endpoint, body):
        r = requests.post(base + API + endpoint, json=body, timeout=30)
        r.raise_for_status()
        return r.json()

    exp = post("experiments/create", {"name": f"bad-requests-{uid}"})["experiment_id"]
    run = post("runs/create", {"experiment_id": exp})["run"]["info"]["run_id"]
    post("runs/log-parameter", {"run_id": run, "key": "fixed", "value": "1"})
    model = f"bad-requests-model-{uid}"
    post("registered-models/create", {"name": model})
    return {"exp": exp, "run": run, "model": model, "uid": uid}


def answer(base, method, endpoint, payload):
    url = base + API + endpoint
    if method == "GET":
        r = requests.get(url, params=payload, timeout=60)
    else:
        r = requests.request(method, url, json=payload, timeout=60)
    try:
        code = r.json().get("error_code")
    except ValueError:
        code = None
    return r.status_code, code


def main():
    keel, mlflow = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/")
    uid = uuid.uuid4().hex[:8]
    ids = {keel: setup(keel, uid), mlflow: setup(mlflow, uid)}
    differ = 0
    for what, method, endpoint, payload, *intended in CASES:
        got = answer(keel, method, endpoint, fill(payload, ids[keel]))
        want = answer(mlflow, method, endpoint, fill(payload, ids[mlflow]))
        expected = tuple(intended[0]) if intended else want
        same = got == expected
        differ += not same
        note = " (keel differs on purpose)" if intended else ""
        print(f"{'ok  ' if same else 'DIFF'} {what}: keel {got[0]} {got[1]}, mlflow {want[0]} {want[1]}{note}")
    print(f"bad requests: {len(CASES) - differ} of {len(CASES)} answered as MLflow does")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
