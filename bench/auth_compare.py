#!/usr/bin/env python3
"""What authentication costs: the shared tracking workload (`bench/tracking_bench.py` in the
shared folder) against keel without auth, keel logging every write to its audit log without
auth (`--audit`), keel with `--auth` (which logs every write too) signed in by password (HTTP
Basic) and by access token (Bearer), and MLflow's basic-auth app (`mlflow server --app-name
basic-auth`, its credential cache off as it ships and on for 60 s), each on a fresh SQLite
file, one after the other on this machine.

The workload speaks no auth of its own, so it runs unchanged with a `sitecustomize` module on
its path that adds the `Authorization` header to every request it sends. Prints a Markdown
table: each server's figures, and keel with auth against keel without it and against MLflow's
basic-auth app.

    python bench/auth_compare.py --shared ../shared --keel target/release/keel \
        --mlflow .venv/bin/mlflow [--quick | --quick-mlflow]

Only loopback traffic; every server is killed at the end.
"""

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request

from tracking_compare import free_port, wait_health

# The first admin, and the user the workload runs as (not an admin, so every request is
# checked against its grants as a team member's would be).
ADMIN, ADMIN_PASSWORD = "bench-admin", "bench-admin-password-1"
USER, PASSWORD = "runner", "runner-password-1"

SITECUSTOMIZE = """
import http.client, os
_header = os.environ.get("BENCH_AUTHORIZATION")
if _header:
    _request = http.client.HTTPConnection.request
    def request(self, method, url, body=None, headers=None, **kw):
        headers = dict(headers or {})
        headers.setdefault("Authorization", _header)
        return _request(self, method, url, body=body, headers=headers, **kw)
    http.client.HTTPConnection.request = request
"""


def basic(user=USER, password=PASSWORD):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def call(url, path, authorization, body):
    req = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Authorization": authorization})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def add_user(url):
    """The workload's user, created by the admin with MLflow's auth API."""
    call(url, "/api/2.0/mlflow/users/create", basic(ADMIN, ADMIN_PASSWORD),
         {"username": USER, "password": PASSWORD})
    return basic()


def keel_token(url):
    """An access token of the workload's user, made with keel's token API."""
    call(url, "/api/2.0/mlflow/users/create", basic(ADMIN, ADMIN_PASSWORD),
         {"username": USER, "password": PASSWORD})
    return "Bearer " + call(url, "/api/keel/v1/tokens", basic(), {"name": "bench"})["token"]


def servers(args):
    """(label, argv, env, authorization) per server: `authorization(url)` prepares the
    workload's user on the started server and returns its header."""
    keel = args.keel

    def keel_argv(auth, audit=False):
        return lambda port, d: [keel, "server", "--host", "127.0.0.1", "--port", str(port),
                                "--db", f"sqlite://{d}/keel.db", "--artifacts", f"{d}/artifacts"] + (
            ["--auth"] if auth else []) + (["--audit"] if audit else [])

    admin = {"KEEL_ADMIN_USERNAME": ADMIN, "KEEL_ADMIN_PASSWORD": ADMIN_PASSWORD}
    out = [
        ("keel", keel_argv(False), {}, lambda url: None),
        ("keel --audit", keel_argv(False, True), {}, lambda url: None),
        ("keel --auth (Basic)", keel_argv(True), admin, add_user),
        ("keel --auth (token)", keel_argv(True), admin, keel_token),
    ]
    if args.mlflow:
        for label, ttl in (("mlflow basic-auth", 0), ("mlflow basic-auth, cache 60 s", 60)):
            def argv(port, d, ttl=ttl):
                with open(f"{d}/basic_auth.ini", "w") as f:
                    f.write(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{d}/auth.db\n"
                            f"admin_username = {ADMIN}\nadmin_password = {ADMIN_PASSWORD}\n"
                            f"authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                            f"auth_cache_ttl_seconds = {ttl}\n")
                return [args.mlflow, "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
                        "--port", str(port), "--workers", "1",
                        "--backend-store-uri", f"sqlite:///{d}/mlflow.db",
                        "--artifacts-destination", f"{d}/artifacts"]
            out.append((label, argv, {"MLFLOW_FLASK_SERVER_SECRET_KEY": "bench-secret",
                                      "MLFLOW_AUTH_CONFIG_PATH": "{d}/basic_auth.ini"}, add_user))
    return out


def measure(label, argv_for, env, authorization, args, tmp):
    d = tempfile.mkdtemp(prefix="srv-", dir=tmp)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = argv_for(port, d)
    env = {**os.environ, **{k: v.replace("{d}", d) for k, v in env.items()}}
    print(f"[{label}] {' '.join(argv)}", file=sys.stderr, flush=True)
    log = open(os.path.join(d, "server.log"), "wb")
    proc = subprocess.Popen(argv, cwd=d, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        try:
            wait_health(url, proc)
        except SystemExit:
            log.flush()
            print(open(os.path.join(d, "server.log")).read()[-3000:], file=sys.stderr)
            raise
        header = authorization(url)
        site = os.path.join(tmp, "site")
        bench_env = {**os.environ, "PYTHONPATH": site}
        if header:
            bench_env["BENCH_AUTHORIZATION"] = header
        bench = os.path.join(args.shared, "bench", "tracking_bench.py")
        cmd = [sys.executable, bench, "--uri", url, "--label", label,
               "--out", os.path.join(d, "result.json"), "--phases", "a,b,c,d"]
        if args.quick or (args.quick_mlflow and label.startswith("mlflow")):
            cmd += ["--n-single", "300", "--batch-requests", "20", "--conc-seconds", "3",
                    "--search-runs", "500"]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, env=bench_env).stdout
        return {"label": label, "summary": json.loads(out.strip().splitlines()[-1])}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()


ROWS = [
    ("a. log-metric, 1 client", lambda s: s["single_log_metric"]["req_per_s"], "req/s", "higher"),
    ("a. log-metric p50", lambda s: s["single_log_metric"]["p50_ms"], "ms", "lower"),
    ("a. log-metric p99", lambda s: s["single_log_metric"]["p99_ms"], "ms", "lower"),
    ("b. log-batch (1000 metrics)", lambda s: s["log_batch"]["metrics_per_s"], "metrics/s", "higher"),
    ("c. 8 threads log-metric", lambda s: s["concurrent_log_metric"]["req_per_s"], "req/s", "higher"),
    ("c. 8 threads p99", lambda s: s["concurrent_log_metric"]["p99_ms"], "ms", "lower"),
    ("d. create runs (4 threads)", lambda s: s["search"]["setup_runs_per_s"], "runs/s", "higher"),
    ("d. filtered + ordered search", lambda s: s["search"]["filtered_median_ms"], "ms", "lower"),
]


def fmt(v):
    if v is None:
        return "-"
    return f"{v:,.2f}" if v < 10 else f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"


def table(results):
    by = {r["label"]: r["summary"] for r in results}
    labels = list(by)
    mlflow = [l for l in labels if l.startswith("mlflow")]
    keel_auth = "keel --auth (Basic)"
    comparisons = [("keel --audit", "keel"), ("keel --auth (Basic)", "keel"),
                   ("keel --auth (token)", "keel")] + [
        (keel_auth, m) for m in mlflow]
    head = "| figure | " + " | ".join(labels) + " | " + " | ".join(
        f"{a} vs {b}" for a, b in comparisons) + " |"
    lines = [head, "|" + "---|" * (1 + len(labels) + len(comparisons))]
    for name, get, unit, better in ROWS:
        vals = {}
        for l, s in by.items():
            try:
                vals[l] = get(s)
            except (KeyError, TypeError):
                vals[l] = None
        cells = [f"{fmt(vals[l])} {unit}" for l in labels]
        ratios = []
        for a, b in comparisons:
            x, y = vals.get(a), vals.get(b)
            if not x or not y:
                ratios.append("-")
            else:
                ratios.append(f"{x / y:.2f}x" if better == "higher" else f"{y / x:.2f}x")
        lines.append(f"| {name} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", required=True, help="the shared folder holding bench/tracking_bench.py")
    ap.add_argument("--keel", required=True, help="the keel binary (a release build)")
    ap.add_argument("--mlflow", default=None, help="the mlflow command of a venv with mlflow[auth]")
    ap.add_argument("--quick", action="store_true", help="a shorter workload")
    ap.add_argument("--quick-mlflow", action="store_true",
                    help="the shorter workload for MLflow's app only (it answers a few requests a "
                         "second without its cache); its figures are rates, so they compare")
    ap.add_argument("--out", default=None, help="write every result as JSON here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "site"))
        with open(os.path.join(tmp, "site", "sitecustomize.py"), "w") as f:
            f.write(SITECUSTOMIZE)
        results = [measure(label, argv, env, auth, args, tmp)
                   for label, argv, env, auth in servers(args)]
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    print(table(results))


if __name__ == "__main__":
    main()
