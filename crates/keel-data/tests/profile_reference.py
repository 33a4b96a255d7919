"""What numpy and pandas make of a CSV's columns: the reference for keel's profiles.

usage: profile_reference.py FILE.csv

Prints JSON: per numeric column its count, missing values, mean, standard deviation (n - 1),
min, max, percentiles 1 to 99 (numpy's default linear interpolation) and a 20-bin histogram
from min to max (numpy.histogram); per text column its count, missing values, distinct values
and value counts.
"""

import json
import sys

import numpy as np
import pandas as pd

frame = pd.read_csv(sys.argv[1], keep_default_na=False, na_values=[""])
out = {}
for name in frame.columns:
    col = frame[name]
    present = col.dropna()
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        values = present.to_numpy(dtype=np.float64)
        counts, edges = np.histogram(values, bins=20, range=(values.min(), values.max()))
        out[name] = {
            "kind": "numeric",
            "count": int(values.size),
            "nulls": int(col.isna().sum()),
            "mean": float(values.mean()),
            "std": float(values.std(ddof=1)),
            "min": float(values.min()),
            "max": float(values.max()),
            "quantiles": [float(q) for q in np.percentile(values, np.arange(1, 100))],
            "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
        }
    else:
        text = present.astype(str).map(lambda v: v.lower() if v in ("True", "False") else v)
        counts = text.value_counts()
        out[name] = {
            "kind": "text",
            "count": int(text.size),
            "nulls": int(col.isna().sum()),
            "cardinality": int(counts.size),
            "counts": {str(k): int(v) for k, v in counts.items()},
        }
print(json.dumps(out))
