#!/usr/bin/env python3
"""Side-by-side tracking benchmark: keel server vs mlflow server (and FastTrackML when installed).

Each server starts on a fresh SQLite file in a temporary folder, one after the other on this
machine, and is measured with the shared reference workload (`bench/tracking_bench.py` in the
shared folder, standard library only): time from process start to the first /health answer,
idle memory, then phases a (single log-metric), b (log-batch), c (8 threads), d (5,000 runs:
create, filtered+ordered search, unfiltered page). Prints a Markdown table with ratios.

    python bench/tracking_compare.py --shared ../shared [--quick] [--out results.json]
        [--postgres postgres://user@127.0.0.1:5432/postgres]

With --postgres every server keeps its metadata in a fresh database of its own on that
PostgreSQL (created with `psql`, dropped afterwards) instead of SQLite; MLflow then needs
psycopg2 in its venv (`pip install psycopg2-binary`).

Only loopback traffic; every server is killed at the end.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss_kib(pid):
    """RSS of a process and its descendants, from /proc."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                kids.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        stack.extend(kids.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def wait_health(url, proc, timeout=120):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"{url} not healthy after {timeout}s")


def servers(args, tmp):
    """(label, argv_for(port, dir, postgres_database_url_or_None)) per server to measure."""
    out = []
    keel = args.keel
    out.append(("keel", lambda port, d, pg: [keel, "server", "--host", "127.0.0.1", "--port", str(port),
                                               "--db", pg or f"sqlite://{d}/keel.db", "--artifacts", f"{d}/artifacts"]))
    if args.mlflow:
        out.append(("mlflow", lambda port, d, pg: [args.mlflow, "server", "--host", "127.0.0.1", "--port", str(port),
                                                     "--workers", "1", "--backend-store-uri",
                                                     pg.replace("postgres://", "postgresql://", 1) if pg else f"sqlite:///{d}/mlflow.db",
                                                     "--artifacts-destination", f"{d}/artifacts"]))
    fml = args.fasttrackml or shutil.which("fml") or (os.path.join(os.path.dirname(args.mlflow), "fml") if args.mlflow else None)
    if fml and os.path.exists(fml):
        out.append(("fasttrackml", lambda port, d, pg: [fml, "server", "--listen-address", f"127.0.0.1:{port}",
                                                          "--database-uri", pg or f"sqlite://{d}/fml.db",
                                                          "--default-artifact-root", f"{d}/artifacts"]))
    return out


def psql(admin_url, sql):
    subprocess.run(["psql", admin_url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def database_url(admin_url, name):
    """`admin_url` with its database replaced by `name`."""
    base, _, query = admin_url.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{name}" + (f"?{query}" if query else "")


def measure(label, argv_for, args, tmp):
    d = tempfile.mkdtemp(prefix=f"{label}-", dir=tmp)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    db_name = None
    if args.postgres:
        db_name = f"bench_{label}_{os.getpid()}"
        psql(args.postgres, f"DROP DATABASE IF EXISTS {db_name}")
        psql(args.postgres, f"CREATE DATABASE {db_name}")
    argv = argv_for(port, d, database_url(args.postgres, db_name) if db_name else None)
    print(f"[{label}] starting: {' '.join(argv)}", file=sys.stderr, flush=True)
    log = open(os.path.join(d, "server.log"), "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=d, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            wait_health(url, proc)
        except SystemExit:
            log.flush()
            print(open(os.path.join(d, "server.log")).read()[-3000:], file=sys.stderr)
            raise
        start_s = time.perf_counter() - t0
        time.sleep(2)
        idle_kib = tree_rss_kib(proc.pid)
        bench = os.path.join(args.shared, "bench", "tracking_bench.py")
        cmd = [sys.executable, bench, "--uri", url, "--server-pid", str(proc.pid), "--label", label,
               "--out", os.path.join(d, "result.json"), "--phases", "a,b,c,d"]
        if args.quick:
            cmd += ["--n-single", "300", "--batch-requests", "20", "--conc-seconds", "3", "--search-runs", "500"]
        print(f"[{label}] {' '.join(cmd)}", file=sys.stderr, flush=True)
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        summary = json.loads(out.strip().splitlines()[-1])
        after_kib = tree_rss_kib(proc.pid)
        return {"label": label, "start_s": start_s, "idle_mib": idle_kib / 1024, "after_mib": after_kib / 1024,
                "summary": summary}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()
        if db_name:
            psql(args.postgres, f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        v = f"{v:,.3f}" if v < 10 else f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"
    return f"{v}{unit}"


def table(results):
    by = {r["label"]: r for r in results}
    rows = [
        ("start to first answer", lambda r: r["start_s"], "s", "lower"),
        ("idle memory (RSS)", lambda r: r["idle_mib"], " MiB", "lower"),
        ("memory after the run (RSS)", lambda r: r["after_mib"], " MiB", "lower"),
        ("a. log-metric, 1 client", lambda r: r["summary"]["single_log_metric"]["req_per_s"], " req/s", "higher"),
        ("a. log-metric p99", lambda r: r["summary"]["single_log_metric"]["p99_ms"], " ms", "lower"),
        ("b. log-batch (1000 metrics)", lambda r: r["summary"]["log_batch"]["metrics_per_s"], " metrics/s", "higher"),
        ("c. 8 threads log-metric", lambda r: r["summary"]["concurrent_log_metric"]["req_per_s"], " req/s", "higher"),
        ("c. 8 threads p99", lambda r: r["summary"]["concurrent_log_metric"]["p99_ms"], " ms", "lower"),
        ("d. create runs (4 threads)", lambda r: r["summary"]["search"]["setup_runs_per_s"], " runs/s", "higher"),
        ("d. filtered + ordered search", lambda r: r["summary"]["search"]["filtered_median_ms"], " ms", "lower"),
        ("d. unfiltered page of 100", lambda r: r["summary"]["search"]["unfiltered_page100_median_ms"], " ms", "lower"),
        ("d. unfiltered page of 1000", lambda r: r["summary"]["search"]["unfiltered_default_page_median_ms"], " ms", "lower"),
    ]
    others = [l for l in by if l != "keel"]
    head = "| figure | " + " | ".join(others + ["keel"]) + " | " + " | ".join(f"keel vs {o}" for o in others) + " |"
    lines = [head, "|" + "---|" * (2 + 2 * len(others))]
    for name, get, unit, better in rows:
        vals = {}
        for l, r in by.items():
            try:
                vals[l] = get(r)
            except (KeyError, TypeError):
                vals[l] = None
        cells = [fmt(vals[o], unit) for o in others] + [fmt(vals.get("keel"), unit)]
        ratios = []
        for o in others:
            k, v = vals.get("keel"), vals[o]
            if not k or not v:
                ratios.append("-")
            elif better == "higher":
                ratios.append(f"{k / v:,.1f}x")
            else:
                ratios.append(f"{v / k:,.1f}x better" if k < v else f"{k / v:,.1f}x worse")
        lines.append(f"| {name} | " + " | ".join(cells + ratios) + " |")
    correct = {l: r["summary"].get("search", {}).get("filtered_correct") for l, r in by.items()}
    lines.append("")
    lines.append("filtered search results correct: " + ", ".join(f"{l}={c}" for l, c in correct.items()))
    errors = {l: sum((r["summary"].get(k) or {}).get("errors", 0) or 0 for k in ("single_log_metric", "log_batch", "concurrent_log_metric"))
              for l, r in by.items()}
    lines.append("request errors: " + ", ".join(f"{l}={e}" for l, e in errors.items()))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"), help="the shared folder holding bench/tracking_bench.py")
    ap.add_argument("--keel", default=os.path.join(ROOT, "target", "release", "keel"))
    ap.add_argument("--mlflow", default=shutil.which("mlflow") or os.path.join(ROOT, ".venv", "bin", "mlflow"))
    ap.add_argument("--fasttrackml", default=None, help="path to FastTrackML's fml binary (pip install fasttrackml)")
    ap.add_argument("--only", default=None, help="comma list of servers to run (keel,mlflow,fasttrackml)")
    ap.add_argument("--quick", action="store_true", help="a small workload, for a smoke run")
    ap.add_argument("--out", default=None, help="write all results as JSON here")
    ap.add_argument("--postgres", default=None, help="admin URL of a PostgreSQL: each server gets a fresh database there")
    args = ap.parse_args()
    if not os.path.exists(args.keel):
        raise SystemExit(f"no keel binary at {args.keel}: cargo build --release -p keel")
    if args.mlflow and not os.path.exists(args.mlflow):
        args.mlflow = None
    tmp = tempfile.mkdtemp(prefix="keel-bench-")
    results = []
    try:
        for label, argv_for in servers(args, tmp):
            if args.only and label not in args.only.split(","):
                continue
            results.append(measure(label, argv_for, args, tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    print(table(results))


if __name__ == "__main__":
    main()
