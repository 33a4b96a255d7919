#!/usr/bin/env python3
"""Side-by-side benchmark of serving MLflow models that run in Python: keel serve's Python
workers against `mlflow models serve`, MLServer (its MLflow runtime) and BentoML (a service
loading the model with mlflow.pyfunc), one row per request, loaded by the shared wrk workload
at several concurrencies, each server given as many worker processes as keel (--workers).

Two models, both from the shared fixtures: the scikit-learn forest as `mlflow.sklearn` saved it
(keel serves it converted to ONNX by default; here also with --no-convert, in its workers) and a
custom `mlflow.pyfunc.PythonModel` around the same forest with pre- and post-processing (clip the
inputs, score, label), which only Python can run.

    python bench/pyfunc_compare.py --shared ../shared/bench --keel target/release/keel \\
        [--mlserver-venv V] [--bentoml-venv V] [--workers 2] [--duration 15s] [--concs "1 8 64"] \\
        [--only keel,mlflow,mlserver,bentoml] [--out results.json]

This Python needs scikit-learn, skl2onnx, mlflow and pyarrow (keel's workers run in it, as
--env-manager local); MLServer (`pip install mlserver mlserver-mlflow`) and BentoML (`pip install
bentoml mlflow scikit-learn`) run from their own virtualenvs and are skipped when not given;
MLServer's parallel workers need `uvloop<0.21` (later versions stop them at start).
"""

import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from serve_compare import fixtures, free_port, measure, parser, print_table  # noqa: E402

CUSTOM = '''
import pickle
import numpy as np
import pandas as pd
import mlflow.pyfunc


class ForestWithRules(mlflow.pyfunc.PythonModel):
    """Clips the inputs, scores them with a forest and labels the score."""

    def load_context(self, context):
        with open(context.artifacts["forest"], "rb") as f:
            self.forest = pickle.load(f)

    def predict(self, context, model_input, params=None):
        x = model_input.clip(-5, 5).to_numpy(dtype=np.float32)
        score = self.forest.predict_proba(x)[:, 1]
        return pd.DataFrame({"score": score, "label": np.where(score > 0.5, "churn", "stay")})
'''


def main():
    ap = parser()
    ap.add_argument("--workers", default="2")
    a = ap.parse_args()
    only = set(filter(None, a.only.split(",")))
    work = fixtures(a.shared, "keel-pyfunc-bench-")
    body1 = work / "mlflow_models/body1.json"
    cols = json.loads(body1.read_text())["dataframe_split"]["columns"]
    row = json.loads(body1.read_text())["dataframe_split"]["data"][0]
    bento_body = work / "bento_body1.json"
    bento_body.write_text(json.dumps({"rows": [row]}))

    # The custom model, around the fixtures' forest (the same data and seed).
    import pickle

    import mlflow.pyfunc
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature

    forest = mlflow.sklearn.load_model(str(work / "mlflow_models/rf"))
    (work / "custom_src").mkdir()
    (work / "custom_src/forest_rules.py").write_text(CUSTOM)
    with open(work / "forest.pkl", "wb") as f:
        pickle.dump(forest, f)
    sys.path.insert(0, str(work / "custom_src"))
    from forest_rules import ForestWithRules

    example = pd.DataFrame([row], columns=cols).astype(np.float32)
    model = ForestWithRules()
    model.forest = forest
    mlflow.pyfunc.save_model(str(work / "mlflow_models/custom"), python_model=model,
                             artifacts={"forest": str(work / "forest.pkl")},
                             code_paths=[str(work / "custom_src/forest_rules.py")],
                             signature=infer_signature(example, model.predict(None, example)))

    venv_path = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    results = {}
    for model_name in ["rf", "custom"]:
        model_dir = work / "mlflow_models" / model_name
        servers = []
        p = free_port()
        keel = [a.keel, "serve", str(model_dir), "--port", str(p), "--python", sys.executable,
                "--workers", a.workers, "--log-dir", str(work / f"predictions-{model_name}")]
        if model_name == "rf":
            servers.append(("keel", "keel serve, converted to ONNX", keel, f"http://127.0.0.1:{p}/invocations", body1, None, None))
            # The reference for the conversion: the shared fixtures' own skl2onnx export.
            q = free_port()
            servers.append(("keel", "keel serve, the fixtures' ONNX export", [a.keel, "serve", str(work / "models/rf.onnx"),
                            "--port", str(q), "--log-dir", str(work / "predictions-onnx")],
                            f"http://127.0.0.1:{q}/invocations", body1, None, None))
            p = free_port()
            keel = list(keel)
            keel[keel.index("--port") + 1] = str(p)
            keel[keel.index("--log-dir") + 1] = str(work / "predictions-rf-workers")
            servers.append(("keel", "keel serve, Python workers", keel + ["--no-convert"],
                            f"http://127.0.0.1:{p}/invocations", body1, None, None))
        else:
            servers.append(("keel", "keel serve, Python workers", keel, f"http://127.0.0.1:{p}/invocations", body1, None, None))
        p = free_port()
        servers.append(("mlflow", "mlflow models serve", [mlflow_bin, "models", "serve", "-m", str(model_dir), "-h", "127.0.0.1",
                        "-p", str(p), "--env-manager", "local", "-w", a.workers],
                        f"http://127.0.0.1:{p}/invocations", body1, venv_path, None))
        if a.mlserver_venv:
            d = work / f"mlserver-{model_name}"
            (d / "model").mkdir(parents=True)
            (d / "model/model-settings.json").write_text(json.dumps({
                "name": "model", "implementation": "mlserver_mlflow.MLflowRuntime",
                "parameters": {"uri": str(model_dir)}}))
            p = free_port()
            (d / "settings.json").write_text(json.dumps({"http_port": p, "grpc_port": free_port(),
                                                         "metrics_port": free_port(),
                                                         "parallel_workers": int(a.workers)}))
            mlserver_env = dict(os.environ, PYTHONPATH=str(work / "custom_src"))
            servers.append(("mlserver", "MLServer + MLflow runtime", [str(a.mlserver_venv / "bin/mlserver"), "start", str(d)],
                            f"http://127.0.0.1:{p}/invocations", body1, mlserver_env, None))
        if a.bentoml_venv:
            d = work / f"bento-{model_name}"
            d.mkdir()
            (d / "service.py").write_text(
                "import bentoml\nimport mlflow.pyfunc\nimport pandas as pd\n\n"
                f"COLUMNS = {cols!r}\n\n"
                f"@bentoml.service(workers={int(a.workers)})\nclass Model:\n"
                f"    def __init__(self):\n        self.model = mlflow.pyfunc.load_model({str(model_dir)!r})\n\n"
                "    @bentoml.api\n    def predict(self, rows: list) -> list:\n"
                "        out = self.model.predict(pd.DataFrame(rows, columns=COLUMNS).astype('float32'))\n"
                "        return out.to_dict(orient='records') if hasattr(out, 'to_dict') else out.tolist()\n")
            p = free_port()
            bento_env = dict(os.environ, PYTHONPATH=str(work / "custom_src"))
            servers.append(("bentoml", "BentoML + mlflow.pyfunc", [str(a.bentoml_venv / "bin/bentoml"), "serve", "service:Model",
                            "--port", str(p)], f"http://127.0.0.1:{p}/predict", bento_body, bento_env, d))
        for key, name, cmd, url, body, senv, cwd in servers:
            if only and key not in only:
                continue
            label = f"{model_name}: {name}"
            out = work / f"out-{model_name}-{key}-{len(results)}"
            measured = measure(a.shared, label, cmd, url, body, senv, cwd, out, a.duration, a.concs)
            if measured:
                results[label] = measured
    print_table(results, a.concs.split(), "model: server")
    if a.out:
        a.out.write_text(json.dumps(results, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
