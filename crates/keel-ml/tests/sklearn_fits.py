"""scikit-learn's fits of the data sets keel's training is compared with.

Usage: sklearn_fits.py OUT_DIR PENGUINS_CSV

Writes, for each data set, OUT_DIR/<set>.train.csv and OUT_DIR/<set>.test.csv (the target is
the column `target`), and OUT_DIR/reference.json: one entry per (set, algorithm, parameters)
with what scikit-learn made of it. The features go through the pipeline keel documents
(keel-ml's pipeline.rs): numeric columns imputed with the training mean, text columns with the
most frequent training value (the smallest on ties) then one-hot encoded (unknown values all
zeros) or, for trees, ordinal-encoded (unknown -1); numeric columns standardised for logistic
and ridge regression, k-nearest neighbours and k-means.
"""

import json
import sys

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    make_blobs,
    make_classification,
    make_friedman1,
)
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

out_dir, penguins_csv = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(7)


def with_text_and_gaps(frame, y, effect):
    """Adds a text column `zone` whose value moves the target (by `effect` per level, for
    regression) and leaves 8% of one numeric column and of `zone` missing."""
    zones = rng.choice(["north", "east", "south", "west"], size=len(frame))
    frame = frame.copy()
    frame["zone"] = zones
    if effect:
        y = y + effect * pd.Series(zones).map({"north": 0, "east": 1, "south": 2, "west": 3}).to_numpy()
    first = frame.columns[0]
    frame.loc[rng.random(len(frame)) < 0.08, first] = np.nan
    frame.loc[rng.random(len(frame)) < 0.08, "zone"] = None
    return frame, y


def numbered(x):
    return pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])


sets = {}
x, y = make_friedman1(n_samples=700, n_features=6, noise=1.0, random_state=0)
sets["friedman"] = ("regression", *with_text_and_gaps(numbered(x), y, 1.5))
d = load_diabetes(as_frame=True)
sets["diabetes"] = ("regression", d.data, d.target.to_numpy())
x, y = make_classification(
    n_samples=700, n_features=6, n_informative=4, n_redundant=0, n_classes=3,
    class_sep=0.8, random_state=1,
)
sets["classes3"] = ("classification", *with_text_and_gaps(numbered(x), y, 0))
c = load_breast_cancer(as_frame=True)
sets["cancer"] = ("classification", c.data, c.target.to_numpy())
p = pd.read_csv(penguins_csv)
sets["penguins"] = ("classification", p.drop(columns=["species"]), p["species"].to_numpy())
mass = p.dropna(subset=["body_mass_g"])
sets["penguin_mass"] = (
    "regression", mass.drop(columns=["body_mass_g"]), mass["body_mass_g"].to_numpy(dtype=float),
)
x, _ = make_blobs(n_samples=600, n_features=3, centers=4, cluster_std=1.0, random_state=3)
sets["blobs"] = ("clustering", numbered(x), None)


def preprocess(frame, encoding, scale):
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    numeric = [c for c in frame.columns if c not in text]
    num_steps = [SimpleImputer(strategy="mean")] + ([StandardScaler()] if scale else [])
    if encoding == "onehot":
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    # keel keeps the columns' order; ColumnTransformer puts numeric first, so names are
    # written out and keel's features are matched by name.
    return ColumnTransformer(
        [
            ("num", make_pipeline(*num_steps), numeric),
            ("text", make_pipeline(SimpleImputer(strategy="most_frequent"), encoder), text),
        ]
    ), numeric, text


def feature_names(numeric, text, transformer):
    names = list(numeric)
    if text:
        encoder = transformer.named_transformers_["text"][-1]
        if isinstance(encoder, OneHotEncoder):
            for column, cats in zip(text, encoder.categories_):
                names += [f"{column}={c}" for c in cats]
        else:
            names += list(text)
    return names


LINEAR = {
    "linear_regression": (lambda: LinearRegression(), "onehot", False, []),
    "ridge_regression": (lambda: Ridge(alpha=1.0), "onehot", True, []),
    "ridge_regression:alpha=10": (lambda: Ridge(alpha=10.0), "onehot", True, ["alpha=10"]),
    "logistic_regression": (
        lambda: LogisticRegression(C=1.0, tol=1e-10, max_iter=100000),
        "onehot", True, ["tol=1e-10", "max_iter=100000"],
    ),
    "logistic_regression:C=0.1": (
        lambda: LogisticRegression(C=0.1, tol=1e-10, max_iter=100000),
        "onehot", True, ["C=0.1", "tol=1e-10", "max_iter=100000"],
    ),
}
NEIGHBOURS = {
    "k_neighbors": ({"n_neighbors": 5}, []),
    "k_neighbors:distance,p=1": (
        {"n_neighbors": 7, "weights": "distance", "p": 1},
        ["n_neighbors=7", "weights=distance", "p=1"],
    ),
}
TREES = {
    "decision_tree": (
        lambda task: (DecisionTreeRegressor if task == "regression" else DecisionTreeClassifier)(
            max_depth=6, random_state=0
        ),
        ["max_depth=6"],
    ),
    "random_forest": (
        lambda task: (RandomForestRegressor if task == "regression" else RandomForestClassifier)(
            n_estimators=100, random_state=0, n_jobs=1,
            max_features=1.0 if task == "regression" else "sqrt",
        ),
        [],
    ),
    "gradient_boosting": (
        lambda task: (
            HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
        )(early_stopping=False, random_state=0),
        ["early_stopping=0"],
    ),
}

def held_out(entry, fitted, xt, task):
    """The entry with what `fitted` predicts for the held-out rows `xt`: class probabilities
    (with the classes' order) or values."""
    if task == "classification":
        entry["classes"] = [str(c) for c in fitted.classes_]
        entry["proba"] = fitted.predict_proba(xt).tolist()
    else:
        entry["predicted"] = fitted.predict(xt).tolist()
    return entry


reference = []
for name, (task, frame, y) in sets.items():
    if task == "clustering":
        train, test = train_test_split(frame, test_size=0.3, random_state=0)
        train.to_csv(f"{out_dir}/{name}.train.csv", index=False)
        test.to_csv(f"{out_dir}/{name}.test.csv", index=False)
        transformer, _, _ = preprocess(train, "onehot", True)
        xt = transformer.fit_transform(train)
        km = KMeans(n_clusters=4, n_init=10, random_state=0).fit(xt)
        # And one run of Lloyd's iterations from the first four (scaled) training rows, to
        # convergence.
        first = KMeans(n_clusters=4, init=xt[:4], n_init=1, tol=0, algorithm="lloyd").fit(xt)
        reference.append({
            "set": name, "task": task, "algorithm": "k_means", "params": ["n_clusters=4", "n_init=10"],
            "test_inertia": float(-km.score(transformer.transform(test))),
            "from_first_rows_inertia": float(first.inertia_),
        })
        continue
    stratify = y if task == "classification" else None
    x_train, x_test, y_train, y_test = train_test_split(
        frame, y, test_size=0.3, random_state=0, stratify=stratify
    )
    x_train.assign(target=y_train).to_csv(f"{out_dir}/{name}.train.csv", index=False)
    x_test.assign(target=y_test).to_csv(f"{out_dir}/{name}.test.csv", index=False)
    linear = {
        k: v for k, v in LINEAR.items()
        if k.startswith("logistic") == (task == "classification")
    }
    for algo, (model, encoding, scale, params) in linear.items():
        transformer, numeric, text = preprocess(x_train, encoding, scale)
        fitted = model().fit(transformer.fit_transform(x_train), y_train)
        names = feature_names(numeric, text, transformer)
        coef = np.atleast_2d(fitted.coef_)
        entry = {
            "set": name, "task": task, "algorithm": algo.split(":")[0], "params": params,
            "coef": [dict(zip(names, map(float, row))) for row in coef],
            "intercept": [float(v) for v in np.atleast_1d(fitted.intercept_)],
            # With the intercept's column: least squares is unique only at full rank.
            "rank": int(np.linalg.matrix_rank(
                np.column_stack([transformer.transform(x_train), np.ones(len(x_train))])
            )),
            "features": len(names) + 1,
        }
        xt = transformer.transform(x_test)
        reference.append(held_out(entry, fitted, xt, task))
    for algo, (kwargs, params) in NEIGHBOURS.items():
        transformer, _, _ = preprocess(x_train, "onehot", True)
        cls = KNeighborsClassifier if task == "classification" else KNeighborsRegressor
        fitted = cls(algorithm="brute", **kwargs).fit(transformer.fit_transform(x_train), y_train)
        xt = transformer.transform(x_test)
        entry = {"set": name, "task": task, "algorithm": algo.split(":")[0], "params": params}
        reference.append(held_out(entry, fitted, xt, task))
    for algo, (model, params) in TREES.items():
        transformer, _, _ = preprocess(x_train, "ordinal", False)
        fitted = model(task).fit(transformer.fit_transform(x_train), y_train)
        predicted = fitted.predict(transformer.transform(x_test))
        score = accuracy_score(y_test, predicted) if task == "classification" else r2_score(y_test, predicted)
        reference.append({
            "set": name, "task": task, "algorithm": algo, "params": params, "score": float(score),
        })

with open(f"{out_dir}/reference.json", "w") as f:
    json.dump(reference, f)
