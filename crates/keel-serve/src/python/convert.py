"""Converts an MLflow model to ONNX for keel, with the rows keel checks the conversion on.

Usage: python convert.py MODEL_DIR OUT_DIR. Loads the model's native flavor (scikit-learn through
skl2onnx; XGBoost and LightGBM through onnxmltools), converts it, and writes OUT_DIR/model.onnx
and OUT_DIR/check.json: the rows (the input example, then rows generated from the signature),
what the original model predicts for them (labels or values, and class probabilities), and what
was used. keel runs the ONNX model on the same rows in its own runtime and serves it only if the
answers agree. When the model cannot be converted, check.json says why ({"reason": ...}).
"""

import json
import sys
import traceback
from pathlib import Path

GENERATED_ROWS = 256


def refuse(out, reason):
    (out / "check.json").write_text(json.dumps({"reason": reason}))
    sys.exit(0)


def example_frame(pd, model, model_dir):
    try:
        example = model.load_input_example(model_dir)
    except Exception:
        example = None
    if example is None:
        return None
    if isinstance(example, dict):
        example = pd.DataFrame(example)
    if not isinstance(example, pd.DataFrame):
        return None
    return example


def generated_rows(np, pd, schema, example, n):
    """Rows drawn from the signature's columns: numbers spread around the example's values (or
    standard normal ones without an example), integers and booleans in kind, text taken from
    the example's values (no other text is known to be valid)."""
    rng = np.random.default_rng(20261207)
    columns = {}
    for col in schema.inputs:
        name, ty = col.name, str(col.type).lower()
        seen = example[name] if example is not None and name in example else None
        if "string" in ty:
            if seen is None or len(seen.dropna()) == 0:
                raise ValueError(f"column '{name}' holds text and there is no input example to draw values from")
            columns[name] = rng.choice(seen.dropna().astype(str).to_numpy(), n)
        elif "bool" in ty:
            columns[name] = rng.random(n) < 0.5
        elif "long" in ty or "integer" in ty:
            lo, hi = (int(seen.min()), int(seen.max())) if seen is not None and len(seen) else (0, 10)
            spread = max(hi - lo, 1)
            values = rng.integers(lo - spread, hi + spread + 1, n)
            columns[name] = values.astype("int32" if "integer" in ty else "int64")
        else:
            if seen is not None and len(seen.dropna()):
                center, scale = float(seen.mean()), float(seen.std()) if len(seen) > 1 else 0.0
                scale = scale if scale > 0 else max(abs(center), 1.0)
            else:
                center, scale = 0.0, 1.0
            values = rng.normal(center, scale * 2, n)
            columns[name] = values.astype("float32" if "float" == ty.split(".")[-1] else "float64")
    return pd.DataFrame(columns)


def main():
    model_dir, out = sys.argv[1], Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    import numpy as np
    import pandas as pd
    from mlflow.models import Model
    from mlflow.types.schema import ColSpec

    model = Model.load(model_dir)
    flavors = model.flavors
    schema = model.signature
    if schema is None or not all(isinstance(c, ColSpec) for c in schema.inputs.inputs):
        refuse(out, "only models whose signature names columns are converted")
    if "sklearn" in flavors:
        import mlflow.sklearn

        native = mlflow.sklearn.load_model(model_dir)
        flavor = "sklearn"
    elif "xgboost" in flavors:
        import mlflow.xgboost

        native = mlflow.xgboost.load_model(model_dir)
        flavor = "xgboost"
    elif "lightgbm" in flavors:
        import mlflow.lightgbm

        native = mlflow.lightgbm.load_model(model_dir)
        flavor = "lightgbm"
    else:
        others = sorted(k for k in flavors if k != "python_function")
        if others:
            refuse(out, "its flavors ({}) have no ONNX converter keel uses (sklearn, xgboost, lightgbm)".format(
                ", ".join(others)))
        loader = flavors.get("python_function", {}).get("loader_module", "?")
        refuse(out, f"a custom python_function model ({loader}) has no ONNX form")
    pyfunc = flavors.get("python_function", {})
    if pyfunc.get("predict_fn", "predict") != "predict":
        refuse(out, f"the model answers with {pyfunc['predict_fn']}, not predict")
    example = example_frame(pd, model, model_dir)
    try:
        rows = generated_rows(np, pd, schema.inputs, example, GENERATED_ROWS)
    except ValueError as e:
        refuse(out, str(e))
    names = [c.name for c in schema.inputs.inputs]
    if example is not None:
        rows = pd.concat([example[names].astype(rows.dtypes.to_dict()), rows], ignore_index=True)
    rows = rows[names]
    numeric = all(pd.api.types.is_numeric_dtype(rows[c].dtype) for c in names)
    classifier = hasattr(native, "predict_proba") and hasattr(native, "classes_")
    try:
        if flavor == "sklearn":
            import skl2onnx
            from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

            options = {id(native): {"zipmap": False}} if classifier else None
            if numeric:
                # One [N, F] input, as keel's fastest path takes it; doubles where the
                # converters take them (what scikit-learn computes in), else floats.
                onx = None
                for ty in (DoubleTensorType, FloatTensorType):
                    try:
                        onx = skl2onnx.to_onnx(native, initial_types=[("input", ty([None, len(names)]))],
                                               options=options, target_opset={"": 17, "ai.onnx.ml": 3})
                        break
                    except Exception:
                        if ty is FloatTensorType:
                            raise
            else:
                onx = skl2onnx.to_onnx(native, rows.head(20), options=options,
                                       target_opset={"": 17, "ai.onnx.ml": 3})
            converter = f"skl2onnx {skl2onnx.__version__}"
        else:
            if not numeric:
                refuse(out, f"{flavor} models with text columns are not converted")
            import onnxmltools
            from onnxmltools.convert.common.data_types import FloatTensorType

            convert = onnxmltools.convert_xgboost if flavor == "xgboost" else onnxmltools.convert_lightgbm
            source = native
            if flavor == "xgboost":
                # The converter reads features by position (f0, f1, ...), not by name.
                import copy

                source = copy.deepcopy(native)
                booster = source.get_booster() if hasattr(source, "get_booster") else source
                booster.feature_names = None
            onx = convert(source, initial_types=[("input", FloatTensorType([None, len(names)]))], target_opset=15)
            converter = f"onnxmltools {onnxmltools.__version__}"
    except SystemExit:
        raise
    except Exception as e:
        refuse(out, f"the converter failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    (out / "model.onnx").write_bytes(onx.SerializeToString())
    check = {
        "flavor": flavor,
        "converter": converter,
        "classifier": bool(classifier),
        "columns": names,
        "example_rows": 0 if example is None else len(example),
        "rows": {c: rows[c].tolist() for c in names},
    }
    classes = getattr(native, "classes_", None)
    # scikit-learn keeps boolean classes as booleans; their ONNX form answers 0 and 1.
    check["boolean_labels"] = bool(classifier and classes is not None and np.asarray(classes).dtype == bool)
    predicted = native.predict(rows)
    check["predictions"] = np.asarray(predicted).tolist()
    if classifier:
        check["probabilities"] = np.asarray(native.predict_proba(rows)).tolist()
    (out / "check.json").write_text(json.dumps(check))


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:
        out = Path(sys.argv[2])
        out.mkdir(parents=True, exist_ok=True)
        (out / "check.json").write_text(json.dumps({
            "reason": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            "traceback": traceback.format_exc()}))
