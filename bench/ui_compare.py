#!/usr/bin/env python3
"""Side-by-side web UI benchmark: keel server's UI against mlflow server's, on the same data.

Both servers start on fresh SQLite files and get the same generated data:
- experiments of N runs (default 10,000 and 100,000) with 20 params and 20 metrics each;
- one experiment of 20 runs whose metric `loss` has 1,000,000 steps, with spikes of 1,000 at
  known steps (one value out of 100,000).
keel is filled through its REST API; MLflow's tables are written directly with SQL (its REST
API would take hours for this much data), after its server created them.

Measured, each as the median of several tries:
- server time of the runs page's first table page (`runs/search`, 100 runs, newest first, the
  request both UIs send);
- time until the runs table shows its first page in headless Chromium, from a cold cache;
- the chart of `loss` over the 20 runs: keel's UI in Chromium (until the chart is drawn) and
  the request behind it; MLflow's chart request (`get-history-bulk-interval`, what its charts
  ask for); bytes per series and how many spikes each answer still holds.

    python bench/ui_compare.py --keel target/release/keel --mlflow .venv/bin/mlflow
        [--runs 10000,100000] [--steps 1000000] [--quick] [--out results.json]

Needs Playwright (`pip install playwright`) and Debian's chromium. Only loopback traffic;
both servers are killed at the end.
"""

import argparse
import concurrent.futures
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

SERIES = 20
SPIKE_EVERY = 100_000
SPIKE = 1000.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url, path, body=None, method=None):
    """The response's bytes (what a server time covers: the request and the whole answer)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method or ("POST" if body is not None else "GET"),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return r.read()


def call(url, path, body=None, method=None):
    raw = fetch(url, path, body, method)
    return json.loads(raw or b"{}"), len(raw)


def wait_health(url, proc, timeout=180):
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} not healthy after {timeout}s")


def start(argv, d):
    log = open(os.path.join(d, "server.log"), "wb")
    proc = subprocess.Popen(argv, cwd=d, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def run_values(i):
    """The params and metrics of run i (the same on both servers)."""
    rnd = random.Random(i)
    params = {f"p{k:02d}": str(rnd.choice([0.1, 0.01, 0.001, 1, 2, 3, "adam", "sgd"])) for k in range(20)}
    metrics = {f"m{k:02d}": rnd.random() for k in range(20)}
    return params, metrics


def loss(run, step):
    v = 1.0 / (1.0 + step / 1000.0) + ((step * 2654435761 + run) % 1000) / 1e5
    return v + SPIKE if (step + run * 7919) % SPIKE_EVERY == 0 else v


def spikes_of(run, steps):
    return {s for s in range(steps) if (s + run * 7919) % SPIKE_EVERY == 0}


# ---------------------------------------------------------------- filling keel (REST)

def fill_keel_runs(url, name, n, threads=8):
    exp, _ = call(url, "/api/2.0/mlflow/experiments/create", {"name": name})
    exp_id = exp["experiment_id"]

    def one(i):
        params, metrics = run_values(i)
        r, _ = call(url, "/api/2.0/mlflow/runs/create", {"experiment_id": exp_id, "run_name": f"run-{i:06d}",
                                                          "start_time": 1_700_000_000_000 + i})
        rid = r["run"]["info"]["run_id"]
        call(url, "/api/2.0/mlflow/runs/log-batch", {
            "run_id": rid,
            "params": [{"key": k, "value": v} for k, v in params.items()],
            "metrics": [{"key": k, "value": v, "timestamp": 1_700_000_000_000 + i, "step": 0} for k, v in metrics.items()],
        })
        return rid

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n), chunksize=64))
    return exp_id


def fill_keel_history(url, steps, threads=4):
    exp, _ = call(url, "/api/2.0/mlflow/experiments/create", {"name": "history"})
    exp_id = exp["experiment_id"]
    ids = []
    for r in range(SERIES):
        run, _ = call(url, "/api/2.0/mlflow/runs/create", {"experiment_id": exp_id, "run_name": f"long-{r:02d}",
                                                            "start_time": 1_700_000_000_000 + r})
        ids.append(run["run"]["info"]["run_id"])

    def batch(job):
        r, start = job
        call(url, "/api/2.0/mlflow/runs/log-batch", {"run_id": ids[r], "metrics": [
            {"key": "loss", "value": loss(r, s), "timestamp": 1_700_000_000_000 + s, "step": s}
            for s in range(start, min(steps, start + 1000))]})

    jobs = [(r, s) for r in range(SERIES) for s in range(0, steps, 1000)]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(batch, jobs, chunksize=16))
    return exp_id, ids


# ---------------------------------------------------------------- filling MLflow (SQL)

def columns(db, table):
    return [r[1] for r in db.execute(f"PRAGMA table_info({table})")]


def insert(db, table, rows):
    """rows: dicts; columns MLflow has but the row lacks are left to their defaults."""
    if not rows:
        return
    cols = [c for c in columns(db, table) if c in rows[0]]
    db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                   [tuple(r[c] for c in cols) for r in rows])


def mlflow_run(exp_id, name, start):
    rid = uuid.uuid4().hex
    return rid, {"run_uuid": rid, "name": name, "source_type": "LOCAL", "source_name": "", "entry_point_name": "",
                 "user_id": "bench", "status": "FINISHED", "start_time": start, "end_time": start + 1000,
                 "source_version": "", "lifecycle_stage": "active", "artifact_uri": f"mlflow-artifacts:/{exp_id}/{rid}/artifacts",
                 "experiment_id": int(exp_id)}


def fill_mlflow_runs(url, dbpath, name, n):
    exp, _ = call(url, "/api/2.0/mlflow/experiments/create", {"name": name})
    exp_id = exp["experiment_id"]
    db = sqlite3.connect(dbpath, timeout=60)
    for lo in range(0, n, 5000):
        runs, params, metrics, tags = [], [], [], []
        for i in range(lo, min(n, lo + 5000)):
            rid, row = mlflow_run(exp_id, f"run-{i:06d}", 1_700_000_000_000 + i)
            runs.append(row)
            tags.append({"key": "mlflow.runName", "value": f"run-{i:06d}", "run_uuid": rid})
            p, m = run_values(i)
            params += [{"key": k, "value": v, "run_uuid": rid} for k, v in p.items()]
            for k, v in m.items():
                metrics.append({"key": k, "value": v, "timestamp": 1_700_000_000_000 + i, "step": 0, "is_nan": 0, "run_uuid": rid})
        insert(db, "runs", runs)
        insert(db, "tags", tags)
        insert(db, "params", params)
        insert(db, "metrics", metrics)
        insert(db, "latest_metrics", metrics)
        db.commit()
    db.close()
    return exp_id


def fill_mlflow_history(url, dbpath, steps):
    exp, _ = call(url, "/api/2.0/mlflow/experiments/create", {"name": "history"})
    exp_id = exp["experiment_id"]
    db = sqlite3.connect(dbpath, timeout=60)
    ids = []
    for r in range(SERIES):
        rid, row = mlflow_run(exp_id, f"long-{r:02d}", 1_700_000_000_000 + r)
        ids.append(rid)
        insert(db, "runs", [row])
        insert(db, "tags", [{"key": "mlflow.runName", "value": f"long-{r:02d}", "run_uuid": rid}])
        cols = [c for c in columns(db, "metrics")]
        for lo in range(0, steps, 100_000):
            rows = []
            for s in range(lo, min(steps, lo + 100_000)):
                row = {"key": "loss", "value": loss(r, s), "timestamp": 1_700_000_000_000 + s, "step": s, "is_nan": 0, "run_uuid": rid}
                rows.append(tuple(row.get(c) for c in cols))
            db.executemany(f"INSERT INTO metrics ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows)
        last = steps - 1
        insert(db, "latest_metrics", [{"key": "loss", "value": loss(r, last), "timestamp": 1_700_000_000_000 + last,
                                       "step": last, "is_nan": 0, "run_uuid": rid}])
        db.commit()
    db.close()
    return exp_id, ids


# ---------------------------------------------------------------- measuring

def median_ms(f, tries):
    out = []
    for _ in range(tries):
        t0 = time.perf_counter()
        f()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def search_body(exp_id, size):
    """The first-page request each UI sends (both tables show 50 runs first)."""
    return {"experiment_ids": [exp_id], "max_results": size, "order_by": ["attributes.start_time DESC"],
            "run_view_type": "ACTIVE_ONLY", "filter": ""}


def browser_ms(browser, url, ready, tries, before=None):
    """Median time from navigation (cold cache, new context) until `ready(page)` returns;
    `before(page)` runs first (to listen for requests). One load before the timed ones starts
    Chromium's processes for the site; every timed load still has an empty cache."""
    out = []
    for i in range(tries + 1):
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = ctx.new_page()
        page.set_default_timeout(600_000)
        if before:
            before(page)
        t0 = time.perf_counter()
        page.goto(url)
        ready(page)
        if i:
            out.append((time.perf_counter() - t0) * 1000)
        ctx.close()
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel", required=True)
    ap.add_argument("--mlflow", required=True)
    ap.add_argument("--runs", default="10000,100000")
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true", help="1,000 runs and 100,000 steps")
    ap.add_argument("--no-chart", action="store_true", help="only the runs pages")
    ap.add_argument("--out")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    args.keel, args.mlflow = os.path.abspath(args.keel), os.path.abspath(args.mlflow)
    sizes = [1000] if args.quick else [int(x) for x in args.runs.split(",")]
    steps = 100_000 if args.quick else args.steps
    tries = 3  # the chart figures (MLflow's chart takes minutes at a million steps)
    runs_tries = 7  # the runs figures

    from playwright.sync_api import sync_playwright

    tmp = tempfile.mkdtemp(prefix="ui-bench-")
    kd, md = os.path.join(tmp, "keel"), os.path.join(tmp, "mlflow")
    os.makedirs(kd)
    os.makedirs(md)
    kport, mport = free_port(), free_port()
    kurl, murl = f"http://127.0.0.1:{kport}", f"http://127.0.0.1:{mport}"
    keel = start([args.keel, "server", "--host", "127.0.0.1", "--port", str(kport), "--db", f"sqlite://{kd}/keel.db",
                  "--artifacts", f"{kd}/artifacts"], kd)
    mlflow = start([args.mlflow, "server", "--host", "127.0.0.1", "--port", str(mport), "--workers", "1",
                    "--backend-store-uri", f"sqlite:///{md}/mlflow.db", "--artifacts-destination", f"{md}/artifacts"], md)
    results = {"runs": {}, "chart": {}}
    try:
        wait_health(kurl, keel)
        wait_health(murl, mlflow)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            for n in sizes:
                print(f"filling {n} runs", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                kexp = fill_keel_runs(kurl, f"runs-{n}", n)
                kfill = time.perf_counter() - t0
                mexp = fill_mlflow_runs(murl, f"{md}/mlflow.db", f"runs-{n}", n)
                newest = f"run-{n - 1:06d}"
                r = {"keel_fill_s": kfill}
                for label, url, exp, size in [("keel", kurl, kexp, 50), ("mlflow", murl, mexp, 50)]:
                    body = search_body(exp, size)
                    call(url, "/ajax-api/2.0/mlflow/runs/search", body)  # warm
                    r[f"{label}_server_ms"] = median_ms(lambda: fetch(url, "/ajax-api/2.0/mlflow/runs/search", body), runs_tries)
                r["keel_page_ms"] = browser_ms(browser, f"{kurl}/#/experiments/{kexp}/runs",
                                               lambda pg: pg.get_by_text(newest, exact=True).first.wait_for(), runs_tries)
                r["mlflow_page_ms"] = browser_ms(browser, f"{murl}/#/experiments/{mexp}/runs",
                                                 lambda pg: pg.get_by_text(newest, exact=True).first.wait_for(), runs_tries)
                results["runs"][n] = r
                print(json.dumps({n: r}), file=sys.stderr, flush=True)

            if args.no_chart:
                browser.close()
                return finish(results, steps, args)
            print(f"filling {SERIES} x {steps} steps", file=sys.stderr, flush=True)
            kexp, kids = fill_keel_history(kurl, steps)
            mexp, mids = fill_mlflow_history(murl, f"{md}/mlflow.db", steps)
            spikes = [spikes_of(r, steps) for r in range(SERIES)]
            c = {"spikes": sum(len(s) for s in spikes)}
            # keel: the chart's request, then the chart in the browser.
            q = "&".join(f"run_id={i}" for i in kids) + "&key=loss&buckets=500"
            data, size = call(kurl, f"/api/keel/v1/metrics/buckets?{q}")
            c["keel_request_ms"] = median_ms(lambda: fetch(kurl, f"/api/keel/v1/metrics/buckets?{q}"), tries)
            c["keel_bytes_per_series"] = size / SERIES
            c["keel_spikes_kept"] = sum(
                sum(1 for i, (a, b) in enumerate(zip(s["first_step"], s["last_step"]))
                    if (s["max"][i] or 0) > SPIKE and any(a <= x <= b for x in spikes[r]))
                for r, s in enumerate(data["series"]))
            sel = ",".join(kids)
            c["keel_chart_ms"] = browser_ms(browser, f"{kurl}/#/experiments/{kexp}?chart=loss&sel={sel}",
                                            lambda pg: pg.locator("figure.chart[data-points]").wait_for(), tries)
            # MLflow: its chart view in the browser (it draws the first 10 runs), and the request
            # behind it, sent again for timing and read for its size and spikes.
            seen = {}

            def listen(pg):
                pg.on("requestfinished", lambda r: seen.setdefault("url", r.url) if "get-history-bulk-interval" in r.url else None)

            def mlflow_chart(pg):
                pg.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .scatterlayer .trace path').length > 0")
                while "url" not in seen:
                    pg.wait_for_timeout(10)

            c["mlflow_chart_ms"] = browser_ms(browser, f"{murl}/#/experiments/{mexp}/runs?compareRunsMode=CHART", mlflow_chart, tries, listen)
            path = seen["url"][len(murl):]
            drawn = path.count("run_ids=")
            mdata, msize = call(murl, path)
            c["mlflow_request_ms"] = median_ms(lambda: fetch(murl, path), tries)
            c["mlflow_runs_drawn"] = drawn
            c["mlflow_request"] = path.split("?")[0] + "?" + "&".join(x for x in path.split("?")[1].split("&") if not x.startswith("run_ids"))
            c["mlflow_bytes_per_series"] = msize / drawn
            by_run = {i: r for r, i in enumerate(mids)}
            c["mlflow_spikes"] = sum(len(spikes[by_run[i]]) for i in path.split("?")[1].split("&") for i in [i[8:]] if i in by_run)
            c["mlflow_spikes_kept"] = sum(1 for m in mdata.get("metrics", []) if m["value"] > SPIKE)
            results["chart"] = c
            print(json.dumps(c), file=sys.stderr, flush=True)
            browser.close()
    finally:
        stop(keel)
        stop(mlflow)
        shutil.rmtree(tmp, ignore_errors=True)
    finish(results, steps, args)


def finish(results, steps, args):
    report(results, steps)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)


def report(res, steps):
    print("| figure | keel | MLflow | ratio |")
    print("|---|---:|---:|---:|")
    for n, r in res["runs"].items():
        for what, key in [("runs/search first page (server)", "server_ms"), ("runs table usable in Chromium", "page_ms")]:
            k, m = r[f"keel_{key}"], r[f"mlflow_{key}"]
            print(f"| {what}, {int(n):,} runs | {k:.1f} ms | {m:.1f} ms | {m / k:.1f}x |")
    c = res.get("chart")
    if c:
        print(f"| chart request, {SERIES} runs x {steps:,} steps | {c['keel_request_ms']:.1f} ms | {c['mlflow_request_ms']:.1f} ms | {c['mlflow_request_ms'] / c['keel_request_ms']:.1f}x |")
        print(f"| chart drawn in Chromium ({SERIES} runs in keel, {c['mlflow_runs_drawn']} in MLflow) | {c['keel_chart_ms']:.1f} ms | {c['mlflow_chart_ms']:.1f} ms | {c['mlflow_chart_ms'] / c['keel_chart_ms']:.1f}x |")
        print(f"| bytes per series | {c['keel_bytes_per_series'] / 1024:.1f} KB | {c['mlflow_bytes_per_series'] / 1024:.1f} KB | |")
        print(f"| spikes kept | {c['keel_spikes_kept']} of {c['spikes']} | {c['mlflow_spikes_kept']} of {c['mlflow_spikes']} | |")
        print(f"\nMLflow's chart request: {c['mlflow_request']}")


if __name__ == "__main__":
    main()
