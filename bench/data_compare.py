#!/usr/bin/env python3
"""Side-by-side data-versioning benchmark: `keel data` vs DVC, then keel's profiling speed.

1. Runs the shared reference workload (`bench/dvc_bench.sh` in the shared folder) with DVC and
   with keel (`keel data add` / `keel data status`, and `keel data add --no-sync`, which like DVC
   does not wait for the disk), on the same generated files (a 1 GiB random
   file, 10,000 files of 10 KiB), `--rounds` times in alternating order, and prints each figure's
   median with the ratio. Nothing is deleted until the end: ext4 is slow to create files for a
   minute or more after many were deleted (it skips recently freed inodes), which would make
   whichever tool runs after another's clean-up pay for it.
2. Writes a CSV of 1M rows x 25 columns (20 numeric, 5 categorical) and times
   `keel data add` on it (read, profile, hash, store, record), with its peak memory.

    python bench/data_compare.py --shared ../shared [--dvc .venv/bin/dvc] [--keel target/release/keel]
        [--big-mb 1024] [--small 10000] [--rows 1000000] [--rounds 3] [--out results.json]

Needs DVC (`pip install dvc`) and numpy. Everything runs under a temporary folder.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

LINE = re.compile(r"^(?P<label>.+?)\s+(?P<secs>[0-9.]+) s\s+peakRSS\s+(?P<mib>\d+) MiB\s+rc=(?P<rc>\d+)")


def run_workload(script, work, env_extra, big_mb, small):
    env = dict(os.environ)
    env.update(env_extra)
    env.update({"WORK": work, "BIG_MB": str(big_mb), "NSMALL": str(small), "RES": work + ".results.txt",
                "KEEP": "1"})
    subprocess.run(["bash", script], env=env, check=True, stdout=sys.stderr)
    rows = []
    with open(work + ".results.txt") as f:
        for line in f:
            m = LINE.match(line.strip())
            if m:
                rows.append((m["label"].strip(), float(m["secs"]), int(m["mib"]), int(m["rc"])))
    return rows


def profile_bench(keel, tmp, rows):
    import numpy as np

    d = os.path.join(tmp, "profile")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "wide.csv")
    rng = np.random.default_rng(7)
    cats = [np.array(["alpha", "beta", "gamma", "delta", "epsilon"])[rng.integers(0, 5, rows)] for _ in range(5)]
    nums = [rng.normal(i, 1 + i / 10, rows).round(6) for i in range(20)]
    t0 = time.time()
    with open(path, "w") as f:
        f.write(",".join([f"num{i}" for i in range(20)] + [f"cat{i}" for i in range(5)]) + "\n")
        chunk = 100_000
        for s in range(0, rows, chunk):
            cols = [n[s:s + chunk].astype(str) for n in nums] + [c[s:s + chunk] for c in cats]
            f.write("\n".join(",".join(r) for r in zip(*cols)) + "\n")
    size = os.path.getsize(path)
    print(f"wrote {path}: {size / 2**20:.0f} MiB in {time.time() - t0:.1f}s (not timed)", file=sys.stderr)
    # Three adds, each in a fresh folder (its own store and workspace) holding a hard link to
    # the file; the median counts.
    times = []
    for i in range(3):
        run = os.path.join(d, f"run{i}")
        os.makedirs(run)
        os.link(path, os.path.join(run, "wide.csv"))
        timing = os.path.join(run, "time.txt")
        out = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", timing, keel, "data", "add", "wide.csv",
                              "--json"], cwd=run, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"keel data add failed: {out.stderr}")
        secs, kib = open(timing).read().split()
        times.append((float(secs), int(kib)))
    added = json.loads(out.stdout)
    secs = statistics.median(t[0] for t in times)
    return {"rows": added["row_count"], "columns": 25, "file_mib": round(size / 2**20, 1),
            "seconds": secs, "runs": [t[0] for t in times],
            "peak_rss_mib": round(max(t[1] for t in times) / 1024, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--dvc", default=shutil.which("dvc") or os.path.join(ROOT, ".venv", "bin", "dvc"))
    ap.add_argument("--keel", default=os.path.join(ROOT, "target", "release", "keel"))
    ap.add_argument("--big-mb", type=int, default=1024)
    ap.add_argument("--small", type=int, default=10000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    script = os.path.join(os.path.abspath(a.shared), "bench", "dvc_bench.sh")
    keel = os.path.abspath(a.keel)
    a.dvc = os.path.abspath(a.dvc) if os.sep in a.dvc else a.dvc
    tmp = tempfile.mkdtemp(prefix="keel-data-bench-")
    tools = {
        "dvc": {"DVC": a.dvc},
        "keel": {"DVC": keel, "INIT_CMD": "true", "ADD_CMD": f"{keel} data add",
                 "STATUS_CMD": f"{keel} data status"},
        # Like DVC, not waiting for the disk before answering.
        "keel_nosync": {"DVC": keel, "INIT_CMD": "true", "ADD_CMD": f"{keel} data add --no-sync",
                        "STATUS_CMD": f"{keel} data status"},
    }
    runs = {t: [] for t in tools}
    try:
        for r in range(a.rounds):
            order = list(tools) if r % 2 == 0 else list(reversed(tools))
            for tool in order:
                work = os.path.join(tmp, f"{tool}{r}")
                runs[tool].append(run_workload(script, work, tools[tool], a.big_mb, a.small))
        prof = profile_bench(keel, tmp, a.rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def medians(tool):
        by = {}
        for rows in runs[tool]:
            for label, secs, mib, rc in rows:
                by.setdefault(label, []).append((secs, mib, rc))
        return {label: (statistics.median(x[0] for x in v), max(x[1] for x in v), max(x[2] for x in v))
                for label, v in by.items()}

    dvc, kl, kn = medians("dvc"), medians("keel"), medians("keel_nosync")

    def cell(secs, k):
        # /usr/bin/time counts in hundredths of a second.
        if k[0] > 0:
            return f"{k[0]:.2f} s, {k[1]} MiB", f"{secs / k[0]:.1f}x"
        return f"<0.01 s, {k[1]} MiB", f">{secs / 0.01:.0f}x"

    print(f"median of {a.rounds} rounds; memory is the largest peak RSS seen")
    print("| figure | DVC | keel | keel vs DVC | keel --no-sync | vs DVC |")
    print("|---|---|---|---|---|---|")
    for label, (secs, mib, rc) in dvc.items():
        k, n = kl.get(label), kn.get(label)
        if not k or not n or label.startswith("tool --version"):
            continue
        flag = "" if rc == 0 and k[2] == 0 and n[2] == 0 else " (non-zero exit)"
        (kt, kr), (nt, nr) = cell(secs, k), cell(secs, n)
        print(f"| {label} | {secs:.2f} s, {mib} MiB | {kt} | {kr} | {nt} | {nr}{flag} |")
    print()
    print(f"profile {prof['rows']:,} rows x {prof['columns']} columns ({prof['file_mib']} MiB CSV) with "
          f"`keel data add`: {prof['seconds']:.2f} s (median of {prof['runs']}), peak {prof['peak_rss_mib']} MiB")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"runs": runs, "profile": prof}, f, indent=1)


if __name__ == "__main__":
    main()
