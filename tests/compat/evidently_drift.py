"""Evidently's drift decisions on data sets this script generates, for keel's agreement test.

    python evidently_drift.py OUT_DIR

Writes, for each case, OUT_DIR/<case>_ref.csv and OUT_DIR/<case>_cur.csv, runs Evidently's
DataDriftPreset on the pair (numbers as numerical columns, strings as categorical ones, as keel
reads them) and prints one JSON object: case -> {"columns": {column: {"method", "threshold",
"score"}}, "share": drifted share}. Runs in its own virtualenv (Evidently 0.7 needs pandas < 3;
scripts/test installs tests/compat/evidently-requirements.txt into .venv-evidently).
"""

import json
import sys
import warnings

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset


def table(rng, n, moved):
    """Columns for every test Evidently picks; `moved` shifts some of them."""
    shift = 1.0 if moved else 0.0
    d = {
        # Numbers: unchanged, clearly moved, slightly moved, spread out.
        "num_same": rng.normal(0.0, 1.0, n),
        "num_moved": rng.normal(0.3 * shift, 1.0, n),
        "num_slight": rng.normal(0.08 * shift, 1.0, n),
        "num_spread": rng.normal(5.0, 1.0 + 0.4 * shift, n),
        # Numbers with few values (compared as categories).
        "int_three": rng.integers(0, 3 + int(shift), n),
        "bin_num": rng.choice([0, 1], n, p=[0.5 - 0.12 * shift, 0.5 + 0.12 * shift]),
        # Strings: two values, several, a value only the current side has.
        "two_same": rng.choice(["no", "yes"], n),
        "two_moved": rng.choice(["no", "yes"], n, p=[0.5 - 0.1 * shift, 0.5 + 0.1 * shift]),
        "five": rng.choice(list("abcde"), n, p=[0.2, 0.2, 0.2, 0.2 - 0.1 * shift, 0.2 + 0.1 * shift]),
        "fresh": rng.choice(["p", "q", "r"] if moved else ["p", "q"], n),
    }
    return pd.DataFrame(d)


CASES = {
    # Up to 1,000 reference rows: K-S, Z-test, chi-squared p-values.
    "small": (800, 500),
    # More: normalised Wasserstein and Jensen-Shannon distances.
    "large": (5000, 3000),
}


def main(out):
    # scipy warns of the division by a zero expected count that a new category makes.
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    result = {}
    for seed, (case, (n_ref, n_cur)) in enumerate(CASES.items()):
        rng = np.random.default_rng(20261206 + seed)
        ref, cur = table(rng, n_ref, False), table(rng, n_cur, True)
        ref.to_csv(f"{out}/{case}_ref.csv", index=False)
        cur.to_csv(f"{out}/{case}_cur.csv", index=False)
        numerical = [c for c in ref.columns if ref[c].dtype.kind in "if"]
        categorical = [c for c in ref.columns if c not in numerical]
        dd = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
        snap = Report([DataDriftPreset()]).run(
            current_data=Dataset.from_pandas(cur, data_definition=dd),
            reference_data=Dataset.from_pandas(ref, data_definition=dd),
        )
        columns, share = {}, None
        for m in snap.dict()["metrics"]:
            cfg, name = m.get("config", {}), m.get("metric_name", "")
            if name.startswith("ValueDrift"):
                columns[cfg["column"]] = {
                    "method": cfg["method"],
                    "threshold": cfg["threshold"],
                    "score": float(m["value"]),
                }
            elif name.startswith("DriftedColumnsCount"):
                share = float(m["value"]["share"])
        result[case] = {"columns": columns, "share": share}
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
