#!/usr/bin/env python3
"""Side-by-side serving benchmark: `keel serve` against the servers a user would pick instead,
on the same random-forest model (100 trees, depth 8, 20 features), one row per request, loaded
by wrk at several concurrencies.

Servers: keel serve (the skl2onnx export, prediction log on), onnxruntime inside a plain
uvicorn app (`bench/serving/ort_app.py`), `mlflow models serve` (the scikit-learn model, one
worker), MLServer with its scikit-learn runtime, BentoML (one worker), and an empty axum
handler as the floor of the machine. Each is started alone, timed to its first answer, then
loaded by the shared workload `serving_bench.sh` (wrk, one thread, same 2 cores); its process
tree's peak RSS is sampled during the load.

    python bench/serve_compare.py --shared ../shared/bench --keel target/release/keel \\
        --empty target/release/examples/empty_handler [--duration 15s] [--concs "1 8 64"] \\
        [--mlserver-venv V] [--bentoml-venv V] [--only keel,ort] [--out results.json]

The model and request bodies come from the shared `make_fixtures.py` (run with this Python,
which needs scikit-learn, skl2onnx, onnxruntime, mlflow and uvicorn). MLServer and BentoML run
from their own virtualenvs (`pip install mlserver mlserver-sklearn`, `pip install bentoml`)
and are skipped when not given.
"""

import argparse
import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status, r.read()


def start(cmd, url, body, env=None, cwd=None, log=None):
    """Starts a server; returns (process, seconds to its first 200 answer)."""
    t0 = time.time()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    while time.time() - t0 < 120:
        if p.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited with {p.returncode}")
        try:
            status, _ = post(url, body)
            if status == 200:
                return p, time.time() - t0
        except Exception:
            time.sleep(0.02)
    raise RuntimeError(f"{cmd} did not answer within 120 s")


def stop(p):
    try:
        os.killpg(p.pid, signal.SIGINT)
        p.wait(timeout=15)
    except Exception:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def load(shared, url, body_file, pid, out, duration, concs):
    env = dict(os.environ, URL=url, SERVER_PID=str(pid), OUTDIR=str(out), DURATION=duration,
               CONCS=concs, BODY1=str(body_file), BODY100=str(body_file), BATCH_CONC="8")
    subprocess.run(["bash", str(shared / "serving_bench.sh")], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines() if l.strip()]
    return [r for r in rows if r["label"].startswith("row1_")]


def measure(shared, name, cmd, url, body, env, cwd, out, duration, concs):
    """Starts one server alone, loads it and stops it; its start time and load points, or None
    when it did not start."""
    out.mkdir(exist_ok=True)
    log = open(out / "server.log", "w")
    try:
        proc, started = start(cmd, url, Path(body).read_bytes(), env=env, cwd=cwd, log=log)
    except Exception as e:
        print(f"{name}: {e}", file=sys.stderr)
        return None
    try:
        rows = load(shared, url, body, proc.pid, out, duration, concs)
    finally:
        stop(proc)
    peak = max(r["peak_tree_rss_kib"] for r in rows) / 1024
    print(f"{name}: start {started:.2f} s, peak {peak:.0f} MiB, " +
          ", ".join(f"c={r['conc']}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms"
                    f"{' (non-2xx ' + str(r['non2xx']) + ')' if r['non2xx'] else ''}" for r in rows), flush=True)
    return {"start_s": round(started, 3), "points": rows}


def print_table(results, concs, first):
    """The Markdown table of measured servers, one column per concurrency."""
    print()
    print(f"| {first} | " + " | ".join(f"c={c} req/s, p50 / p99" for c in concs) + " | peak memory | start |")
    print("|---|" + "---|" * (len(concs) + 2))
    for name, r in results.items():
        cells = []
        for c in concs:
            pt = next((x for x in r["points"] if str(x["conc"]) == c), None)
            cells.append(f"{pt['rps']:,.0f}, {pt['p50_ms']:.2f} / {pt['p99_ms']:.2f} ms" if pt else "-")
        peak = max(x["peak_tree_rss_kib"] for x in r["points"]) / 1024
        print(f"| {name} | " + " | ".join(cells) + f" | {peak:.0f} MiB | {r['start_s']:.2f} s |")


def parser():
    """The arguments both serving benchmarks take."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", required=True, type=Path)
    ap.add_argument("--keel", required=True)
    ap.add_argument("--mlserver-venv", type=Path)
    ap.add_argument("--bentoml-venv", type=Path)
    ap.add_argument("--duration", default="15s")
    ap.add_argument("--concs", default="1 8 64")
    ap.add_argument("--only", default="")
    ap.add_argument("--out", type=Path)
    return ap


def fixtures(shared, prefix):
    """A work folder holding the shared fixtures (models and request bodies)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    env = dict(os.environ, KEEL_BENCH_WORK=str(work))
    subprocess.run([sys.executable, str(shared / "make_fixtures.py")], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return work


def main():
    ap = parser()
    ap.add_argument("--empty")
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    work = fixtures(a.shared, "keel-serve-bench-")
    rf_onnx = work / "models/rf.onnx"
    body1 = work / "mlflow_models/body1.json"
    row = json.loads(body1.read_text())["dataframe_split"]["data"][0]
    v2_body = work / "v2_body1.json"
    v2_body.write_text(json.dumps({"inputs": [{"name": "predict", "shape": [1, 20], "datatype": "FP32", "data": [row]}]}))
    bento_body = work / "bento_body1.json"
    bento_body.write_text(json.dumps({"rows": [row]}))
    # The same forest again (same data and seed as make_fixtures.py) for MLServer and BentoML.
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    X, y = make_classification(n_samples=50_000, n_features=20, n_informative=10, n_redundant=5, random_state=0)
    rf = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0).fit(X.astype(np.float32), y)

    servers = []
    port = free_port
    p = port()
    servers.append(("keel serve", [a.keel, "serve", str(rf_onnx), "--port", str(p), "--log-dir", str(work / "predictions")],
                    f"http://127.0.0.1:{p}/invocations", body1, None, None))
    p = port()
    servers.append(("onnxruntime + uvicorn", [sys.executable, "-m", "uvicorn", "ort_app:app", "--app-dir", str(HERE / "serving"),
                    "--port", str(p), "--log-level", "warning"], f"http://127.0.0.1:{p}/invocations", body1,
                    dict(os.environ, MODEL=str(rf_onnx)), None))
    p = port()
    mlflow = str(Path(sys.executable).parent / "mlflow")
    # mlflow starts uvicorn by name: the venv's bin must be on PATH.
    venv_path = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    servers.append(("mlflow models serve", [mlflow, "models", "serve", "-m", str(work / "mlflow_models/rf"), "-h", "127.0.0.1",
                    "-p", str(p), "--env-manager", "local", "-w", "1"], f"http://127.0.0.1:{p}/invocations", body1, venv_path, None))
    if a.mlserver_venv:
        d = work / "mlserver/rf"
        d.mkdir(parents=True)
        with open(d / "model.joblib", "wb") as f:
            import joblib
            joblib.dump(rf, f)
        (d / "model-settings.json").write_text(json.dumps({"name": "rf", "implementation": "mlserver_sklearn.SKLearnModel",
                                                           "parameters": {"uri": "./model.joblib"}}))
        p = port()
        (work / "mlserver/settings.json").write_text(json.dumps({"http_port": p, "grpc_port": port(), "metrics_port": port(),
                                                                 "parallel_workers": 0}))
        servers.append(("MLServer + sklearn runtime", [str(a.mlserver_venv / "bin/mlserver"), "start", str(work / "mlserver")],
                        f"http://127.0.0.1:{p}/v2/models/rf/infer", v2_body, None, None))
    if a.bentoml_venv:
        d = work / "bento"
        d.mkdir()
        with open(d / "rf.pkl", "wb") as f:
            pickle.dump(rf, f)
        (d / "service.py").write_text(
            "import pickle\nimport bentoml\nimport numpy as np\n\n"
            "@bentoml.service(workers=1)\nclass Forest:\n"
            "    def __init__(self):\n        self.model = pickle.load(open('rf.pkl', 'rb'))\n\n"
            "    @bentoml.api\n    def predict(self, rows: list) -> list:\n"
            "        return self.model.predict_proba(np.asarray(rows, dtype=np.float32)).tolist()\n")
        p = port()
        servers.append(("BentoML", [str(a.bentoml_venv / "bin/bentoml"), "serve", "service:Forest", "--port", str(p)],
                        f"http://127.0.0.1:{p}/predict", bento_body, None, d))
    if a.empty:
        p = port()
        servers.append(("empty axum handler (floor)", [a.empty, str(p)], f"http://127.0.0.1:{p}/invocations", body1, None, None))

    results = {}
    for name, cmd, url, body, senv, cwd in servers:
        key = name.split()[0].lower()
        if only and key not in only:
            continue
        measured = measure(a.shared, name, cmd, url, body, senv, cwd, work / f"out-{key}", a.duration, a.concs)
        if measured:
            results[name] = measured
    print_table(results, a.concs.split(), "server")
    if a.out:
        a.out.write_text(json.dumps(results, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
