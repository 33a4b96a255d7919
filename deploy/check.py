"""Offline checks of keel's deployment files (no Docker engine or cluster needed).

    python deploy/check.py KEEL_BINARY

- Every Kubernetes manifest validates, strictly (unknown fields rejected), against the official
  schemas of several Kubernetes versions bundled in `kubernetes-validate`; a manifest with a
  misspelt field must fail, so the check itself is known to work.
- Each Dockerfile's build stage builds what the workspace can build (`cargo build --release
  --locked -p keel`, for a package `keel` with a binary `keel`; `Dockerfile.serve` with
  `--no-default-features`, the serving-only build), from paths that exist, and its runtime
  stage copies that binary; the `KEEL_*` settings it sets are ones keel reads.
- Every keel command in the compose file and the manifests (`server`, `db migrate`, `serve`)
  parses with the real binary, and every `KEEL_*` variable they set is one keel reads; `keel
  serve`'s log spool is a mounted volume.
- The Grafana dashboard (`grafana/keel-monitoring.json`) and the Prometheus rules
  (`prometheus/keel-rules.yaml`) parse, and every metric they use is one keel registers.
"""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S = os.path.join(ROOT, "deploy", "kubernetes")
VERSIONS = ["1.29.0", "1.33.0"]
# The settings keel reads from the environment (clap `env = ...` anywhere in the binary's
# sources: main.rs and the modules that own their commands' arguments).
SOURCES = "".join(
    open(p).read()
    for p in sorted(glob.glob(os.path.join(ROOT, "crates", "keel", "src", "**", "*.rs"), recursive=True))
)
KEEL_ENV = set(re.findall(r'env = "(KEEL_[A-Z_]+)"', SOURCES)) | {"KEEL_LOG"}
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL", msg)


def validate(paths):
    validator = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    for v in VERSIONS:
        r = subprocess.run([validator, "--strict", "--quiet", "-k", v, *paths], capture_output=True, text=True)
        if r.returncode != 0:
            return f"kubernetes {v}: {r.stdout.strip()} {r.stderr.strip()}"
    return None


def keel_accepts(binary, args, what):
    r = subprocess.run([binary, *args, "--help"], capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"{what}: `keel {' '.join(args)}` does not parse: {r.stderr.strip()}")


def check_env(env, what):
    for k in env:
        if k.startswith("KEEL_") and k not in KEEL_ENV:
            fail(f"{what}: {k} is not a setting keel reads ({sorted(KEEL_ENV)})")


def check_dockerfile(binary, name, build_cmd, runtime_copy, cmd):
    """A two-stage Dockerfile: its build stage runs `build_cmd` from paths that exist, its runtime
    stage has `runtime_copy`, sets only settings keel reads, and its command parses."""
    docker = open(os.path.join(ROOT, "deploy", name)).read()
    stages = re.split(r"^FROM ", docker, flags=re.M)[1:]
    if len(stages) != 2:
        fail(f"{name}: expected a build and a runtime stage, found {len(stages)}")
        return
    build, runtime = stages
    if build_cmd not in build:
        fail(f"{name}: the build stage must run `{build_cmd}`")
    for src in re.findall(r"^COPY (?!--from)(.+?) \S+$", build, flags=re.M):
        for p in src.split():
            if not os.path.exists(os.path.join(ROOT, p)):
                fail(f"{name} copies {p}, which does not exist")
    if runtime_copy not in runtime:
        fail(f"{name}: the runtime stage must have `{runtime_copy}`")
    check_env(re.findall(r"(KEEL_[A-Z_]+)=", runtime), name)
    keel_accepts(binary, cmd, f"{name} CMD")


def exposed_metrics():
    """The metric names keel exposes, from where its sources register them: the server's
    (`keel_`), keel serve's (`keel_serve_`) and the monitoring gauges (`keel_monitor_`);
    counters end in `_total`, histograms add `_bucket`, `_sum` and `_count`."""
    sources = {
        "keel_": "crates/keel-server/src/metrics.rs",
        "keel_serve_": "crates/keel-serve/src/metrics.rs",
        "keel_monitor_": "crates/keel-monitor/src/gauges.rs",
    }
    names = set()
    for prefix, path in sources.items():
        text = open(os.path.join(ROOT, path)).read()
        for base in re.findall(r'register\(\s*"([a-z_0-9]+)"', text):
            for suffix in ("", "_total", "_bucket", "_sum", "_count"):
                names.add(prefix + base + suffix)
    return names


def check_monitoring():
    """The Grafana dashboard and the Prometheus rules parse and use only metrics keel exposes."""
    names = exposed_metrics()
    if "keel_monitor_drift_share" not in names or "keel_serve_requests_total" not in names:
        fail(f"could not find keel's metric registrations (found {len(names)} names)")

    def used(expr, what):
        for metric in re.findall(r"\b(keel_[a-z_0-9]+)", expr):
            if metric not in names:
                fail(f"{what}: {metric} is not a metric keel exposes")

    dash = json.load(open(os.path.join(ROOT, "deploy", "grafana", "keel-monitoring.json")))
    if not dash.get("panels"):
        fail("the Grafana dashboard has no panels")
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            used(t["expr"], f"dashboard panel '{panel['title']}'")
    for var in dash["templating"]["list"]:
        used(var.get("query", ""), f"dashboard variable {var['name']}")
    rules = yaml.safe_load(open(os.path.join(ROOT, "deploy", "prometheus", "keel-rules.yaml")))
    count = 0
    for group in rules["groups"]:
        for rule in group["rules"]:
            count += 1
            if not rule.get("alert") or not rule.get("expr"):
                fail(f"rule {rule} needs an alert name and an expr")
            used(rule["expr"], f"rule {rule.get('alert')}")
    if not count:
        fail("keel-rules.yaml has no rules")


def main():
    binary = sys.argv[1]
    manifests = sorted(p for p in glob.glob(os.path.join(K8S, "*.yaml")) if not p.endswith("kustomization.yaml"))
    err = validate(manifests)
    if err:
        fail(err)
    # The kustomization lists every manifest.
    kust = yaml.safe_load(open(os.path.join(K8S, "kustomization.yaml")))
    listed = {os.path.join(K8S, r) for r in kust["resources"]}
    if listed != set(manifests):
        fail(f"kustomization.yaml resources {sorted(listed)} != manifests {manifests}")
    # A misspelt field must be rejected: the validator really validates.
    with tempfile.TemporaryDirectory() as tmp:
        bad = os.path.join(tmp, "bad.yaml")
        doc = yaml.safe_load(open(os.path.join(K8S, "deployment.yaml")))
        doc["spec"]["replica"] = doc["spec"].pop("replicas")
        yaml.safe_dump(doc, open(bad, "w"))
        if validate([bad]) is None:
            fail("a Deployment with 'replica' instead of 'replicas' passed validation")
    for path in manifests:
        for doc in yaml.safe_load_all(open(path)):
            kind = doc["kind"]
            if kind in ("Deployment", "Job"):
                spec = doc["spec"]["template"]["spec"]
                for c in spec["containers"]:
                    keel_accepts(binary, c.get("args", []), f"{os.path.basename(path)} {c['name']}")
                    probes = [c.get(p, {}).get("httpGet", {}).get("path") for p in ("livenessProbe", "readinessProbe")]
                    if kind == "Deployment" and probes != ["/health", "/health"]:
                        fail(f"{path}: liveness and readiness must probe /health, got {probes}")
                    args = c.get("args", [])
                    if args[:1] == ["serve"] and "--log-spool" in args:
                        # The spool must be a volume: the root file system is read-only.
                        spool = args[args.index("--log-spool") + 1]
                        mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
                        if spool not in mounts:
                            fail(f"{path}: the log spool {spool} is not a mounted volume ({mounts})")
            if kind in ("ConfigMap", "Secret"):
                check_env(doc.get("data") or doc.get("stringData") or {}, os.path.basename(path))

    compose = yaml.safe_load(open(os.path.join(ROOT, "deploy", "compose.yaml")))
    for name, svc in compose["services"].items():
        if svc.get("image", "").startswith("keel") or "build" in svc:
            keel_accepts(binary, svc.get("command", []), f"compose service {name}")
            check_env(svc.get("environment", {}), f"compose service {name}")

    meta = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--format-version", "1", "--locked"],
                                     cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    keel = [p for p in meta["packages"] if p["name"] == "keel"]
    bins = {t["name"] for p in keel for t in p["targets"] if "bin" in t["kind"]}
    if "keel" not in bins:
        fail("the workspace has no package `keel` with a binary `keel`")
    if not any("full" in p["features"].get("default", []) for p in keel):
        fail("the package `keel` has no default feature `full` for --no-default-features to leave out")
    check_dockerfile(binary, "Dockerfile", "cargo build --release --locked -p keel",
                     "COPY --from=build /src/target/release/keel /usr/local/bin/keel", ["server"])
    check_dockerfile(binary, "Dockerfile.serve", "cargo build --release --locked -p keel --no-default-features",
                     "COPY --from=build /rootfs/ /", ["serve"])
    serve = open(os.path.join(ROOT, "deploy", "Dockerfile.serve")).read()
    if "cp target/release/keel /rootfs/usr/local/bin/keel" not in serve:
        fail("Dockerfile.serve: the build stage must put the binary at /rootfs/usr/local/bin/keel")
    check_monitoring()
    print("deploy files: " + ("OK" if not failures else f"{len(failures)} problem(s)"))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
