"""keel's web UI in a real browser (Debian's Chromium, driven by Playwright over the DevTools
protocol), against a `keel server` this script fills through the official mlflow client.

Usage: browser.py SERVER_URL. Every check raises on failure; the last line printed is
"the web UI shows what the client logged" when all passed.
"""

import json
import logging
import os
import struct
import subprocess
import sys
import tempfile
import urllib.request
import warnings
import zlib

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from playwright.sync_api import expect, sync_playwright
from sklearn.linear_model import LogisticRegression

URL = sys.argv[1].rstrip("/")
KEEL = os.environ.get("KEEL_BIN", "keel")
warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.ERROR)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
mlflow.set_tracking_uri(URL)
client = MlflowClient(URL)
CHROMIUM = os.environ.get("KEEL_CHROMIUM", "/usr/bin/chromium")
SPIKE_STEP, SPIKE = 1234, 1e4
STEPS = 3000


def png(width, height):
    """A small RGB PNG, built by hand."""
    rows = b"".join(b"\x00" + b"".join(bytes([x * 40 % 256, y * 40 % 256, 128]) for x in range(width)) for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def fill():
    """One experiment: a parent run with three children, histories with a spike, artifacts of
    every previewed kind, a dataset input, two registered versions and an alias."""
    exp_id = client.create_experiment("ui-demo")
    mlflow.set_experiment(experiment_id=exp_id)
    runs = {}
    df = pd.DataFrame({"x": np.arange(20.0), "y": np.arange(20) % 2})
    with mlflow.start_run(run_name="parent") as parent:
        runs["parent"] = parent.info.run_id
        mlflow.log_param("kind", "sweep")
        for i, (lr, depth) in enumerate([(0.1, 3), (0.01, 3), (0.1, 5)]):
            with mlflow.start_run(run_name=f"child-{i}", nested=True) as run:
                runs[f"child-{i}"] = run.info.run_id
                mlflow.log_params({"lr": lr, "depth": depth, "seed": 7})
                values = [1.0 / (1 + s * lr) + (SPIKE if (i == 1 and s == SPIKE_STEP) else 0.0) for s in range(STEPS)]
                for start in range(0, STEPS, 1000):
                    client.log_batch(run.info.run_id, metrics=[
                        mlflow.entities.Metric("loss", values[s], 1_700_000_000_000 + s * 1000, s) for s in range(start, min(STEPS, start + 1000))
                    ])
                mlflow.log_metric("accuracy", 0.7 + 0.1 * i)
                mlflow.set_tag("team", "vision")
                mlflow.log_input(mlflow.data.from_pandas(df, name="train-frame"), context="training")
                if i == 0:
                    with tempfile.TemporaryDirectory() as d:
                        files = {
                            "notes.txt": b"plain text notes\nline two\n",
                            "config.json": json.dumps({"alpha": 1, "nested": {"beta": [1, 2]}}).encode(),
                            "params.yaml": b"alpha: 1\nbeta: two\n",
                            "table.csv": b"name,score\n\"a, quoted\",1.5\nb,2.5\n",
                            "plot.png": png(8, 6),
                            "shape.svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"><circle cx="20" cy="20" r="15" fill="teal"/></svg>',
                            "report.html": b"<html><body><h1 id='r'>Drift report</h1><script>document.getElementById('r').textContent += ' (scripted)';</script></body></html>",
                        }
                        for name, data in files.items():
                            with open(os.path.join(d, name), "wb") as f:
                                f.write(data)
                        mlflow.log_artifacts(d, artifact_path="files")
                    model = LogisticRegression().fit(df[["x"]], df["y"])
                    mlflow.sklearn.log_model(model, name="model", registered_model_name="ui-model", input_example=df[["x"]].head(2))
                if i == 2:
                    model = LogisticRegression(C=0.5).fit(df[["x"]], df["y"])
                    mlflow.sklearn.log_model(model, name="model", registered_model_name="ui-model", input_example=df[["x"]].head(2))
    client.set_registered_model_alias("ui-model", "champion", "1")

    # Two versions of a keel dataset (`basket`), the second used by child-0 (as `keel train` logs it).
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "basket.csv")
        for n in (50, 80):
            pd.DataFrame({"price": np.linspace(1, n, n), "kind": ["a", "b"] * (n // 2)}).to_csv(path, index=False)
            subprocess.run([KEEL, "data", "add", path, "--tracking-uri", URL], check=True, capture_output=True)
        rules = os.path.join(d, "rules.yaml")
        with open(rules, "w") as f:
            f.write("format: keel.rules/v1\nrules:\n  - rule: row_count\n    min: 60\n  - rule: not_null\n    column: price\n")
        for target, passes in (("basket@1", False), ("basket@2", True)):
            done = subprocess.run([KEEL, "data", "validate", target, "--rules", rules, "--tracking-uri", URL], capture_output=True)
            assert (done.returncode == 0) == passes, done
    with urllib.request.urlopen(URL + "/api/keel/v1/datasets/basket/versions/2") as r:
        version = json.load(r)["version"]
    dataset = mlflow.entities.Dataset(name="basket", digest=version["hash"][:32], source_type="keel", source="keel://basket@2")
    client.log_inputs(runs["child-0"], datasets=[mlflow.entities.DatasetInput(dataset, tags=[mlflow.entities.InputTag("mlflow.data.context", "training")])])
    return exp_id, runs


def launch(p):
    return p.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"],
    )


def rows(page, table="#runs"):
    return page.locator(f"{table} tbody tr")


def main():
    exp_id, runs = fill()
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.set_default_timeout(15_000)

        # Experiments list -> runs table, children grouped under their parent.
        page.goto(URL + "/")
        expect(page.locator("#experiments")).to_contain_text("ui-demo")
        page.get_by_role("link", name="ui-demo").click()
        expect(rows(page)).to_have_count(4)
        expect(page.locator("#runs tbody tr.child")).to_have_count(3)
        assert page.locator("#runs tbody tr").first.get_attribute("data-run-id") == runs["parent"]

        # Search with MLflow's grammar, by keyboard; an error shows its position.
        page.locator("#filter").fill("params.lr = '0.1'")
        page.locator("#filter").press("Enter")
        expect(rows(page)).to_have_count(2)
        assert "filter=" in page.url
        page.locator("#filter").fill("metrics.loss <")
        page.locator("#filter").press("Enter")
        expect(page.locator("#filter-error")).to_contain_text("position")
        page.locator("#filter").fill("")
        page.locator("#filter").press("Enter")
        expect(rows(page)).to_have_count(4)

        # Sort on a metric column, both ways (the address keeps it).
        page.locator('[id="sort-metrics.accuracy"]').click()
        expect(page.locator('th[aria-sort="descending"]')).to_have_count(1)
        names = [n.strip("↳ ") for n in page.locator("#runs tbody tr td:nth-child(2)").all_inner_texts()]
        page.locator('[id="sort-metrics.accuracy"]').click()
        expect(page.locator('th[aria-sort="ascending"]')).to_have_count(1)
        page.locator("#group").uncheck()
        expect(page.locator("#runs tbody tr.child")).to_have_count(0)
        names = [n.strip() for n in page.locator("#runs tbody tr td:nth-child(2)").all_inner_texts()]
        assert names[:3] == ["child-0", "child-1", "child-2"], names
        shared = page.url
        page2 = browser.new_page()
        page2.goto(shared)
        expect(page2.locator('th[aria-sort="ascending"]')).to_have_count(1)
        page2.close()

        # Server-side pages of two runs: forward twice, back once.
        page.goto(f"{URL}/#/experiments/{exp_id}?n=2&group=0")
        ids = lambda: page.locator("#runs tbody tr").evaluate_all("rs => rs.map(r => r.dataset.runId)")
        expect(rows(page)).to_have_count(2)
        first = ids()
        page.locator("#next-page").click()
        expect(page.locator("#prev-page")).to_be_enabled()
        second = ids()
        assert len(second) == 2 and not set(first) & set(second), (first, second)
        page.locator("#prev-page").click()
        expect(page.locator("#prev-page")).to_be_disabled()
        assert ids() == first
        page.goto(shared)
        expect(page.locator('th[aria-sort="ascending"]')).to_have_count(1)
        expect(rows(page)).to_have_count(4)

        # Choose a column.
        page.locator("#columns summary").click()
        page.get_by_label("tags.team").check()
        expect(page.locator("#runs thead")).to_contain_text("team")

        # Select two runs and compare them.
        page.locator(f'[id="sel-{runs["child-0"]}"]').check()
        page.locator(f'[id="sel-{runs["child-2"]}"]').check()
        page.locator("#compare").click()
        expect(page.locator("h1")).to_have_text("Compare 2 runs")
        expect(page.locator("#compare-params tbody tr.diff")).to_have_count(1)  # depth differs, lr and seed do not
        expect(page.locator("#compare-params")).to_contain_text("depth")
        expect(page.locator("#scatter circle")).to_have_count(2)
        page.locator("#only-diff").uncheck()
        expect(page.locator("#compare-params tbody tr")).to_have_count(3)
        expect(page.locator("figure.chart[data-points]")).to_have_count(1)

        # A run at the address the client prints; its charts keep the spike; zoom reloads at
        # full detail.
        page.goto(f"{URL}/#/experiments/{exp_id}/runs/{runs['child-1']}")
        expect(page.locator("h1")).to_contain_text("child-1")
        expect(page.locator("#params")).to_contain_text("0.01")
        expect(page.locator("#inputs")).to_contain_text("train-frame")
        page.get_by_role("tab", name="Metric charts").click()
        chart = page.locator('figure.chart[data-key="loss"]')
        expect(chart).to_have_attribute("data-points", "500")
        expect(chart).to_have_attribute("data-raw", "false")
        top = page.evaluate("() => Math.max(...document.querySelector('figure[data-key=loss]').chart.state.series[0].max)")
        assert top > SPIKE, top
        box = chart.locator("canvas").bounding_box()
        left = box["x"] + 64 + (box["width"] - 76) * 0.40
        right = box["x"] + 64 + (box["width"] - 76) * 0.44
        page.mouse.move(left, box["y"] + 100)
        page.mouse.down()
        page.mouse.move(right, box["y"] + 120, steps=5)
        page.mouse.up()
        expect(chart).to_have_attribute("data-zoomed", "true")
        expect(chart).to_have_attribute("data-raw", "true")
        lo, hi, n = page.evaluate("() => { const s = document.querySelector('figure[data-key=loss]').chart.state.series[0]; return [s.min_step, s.max_step, s.first_step.length]; }")
        assert lo <= SPIKE_STEP <= hi and n == hi - lo + 1, (lo, hi, n)
        chart.locator("button.reset").click()
        expect(chart).to_have_attribute("data-raw", "false")

        # Artifact previews.
        page.goto(f"{URL}/#/experiments/{exp_id}/runs/{runs['child-0']}/artifacts")
        page.locator('.tree button[data-path="files"]').click()
        checks = {
            "files/notes.txt": ("pre.preview", "line two"),
            "files/config.json": ("pre.preview", '"beta": ['),
            "files/params.yaml": ("pre.preview", "beta: two"),
            "files/table.csv": ("table.csv tbody tr:first-child td:first-child", "a, quoted"),
        }
        for path, (sel, text) in checks.items():
            page.locator(f'.tree button[data-path="{path}"]').click()
            expect(page.locator(sel)).to_contain_text(text)
        for path in ["files/plot.png", "files/shape.svg"]:
            page.locator(f'.tree button[data-path="{path}"]').click()
            img = page.locator("img.preview")
            expect(img).to_have_attribute("alt", path)
            page.wait_for_function("() => { const i = document.querySelector('img.preview'); return i && i.complete && i.naturalWidth > 0; }")
        page.locator('.tree button[data-path="files/report.html"]').click()
        expect(page.frame_locator("iframe.preview").locator("#r")).to_have_text("Drift report (scripted)")
        # The logged model (MLflow 3) and its artifacts, through the run's page.
        page.goto(f"{URL}/#/experiments/{exp_id}/runs/{runs['child-0']}")
        page.locator("#logged-models a").click()
        expect(page.locator("h1")).to_contain_text("model")
        page.locator('.tree button[data-path="MLmodel"]').click()
        expect(page.locator("pre.preview")).to_contain_text("flavors:")

        # The dataset input links to its keel version; the version's profile, users and diff.
        page.goto(f"{URL}/#/experiments/{exp_id}/runs/{runs['child-0']}")
        page.locator("#inputs").get_by_role("link", name="basket v2").click()
        expect(page.locator("h1")).to_have_text("basket v2")
        expect(page.locator("#used-by")).to_contain_text(runs["child-0"])
        expect(page.locator("#profile [data-column]")).to_have_count(2)
        expect(page.locator('#validations details[data-passed="true"]')).to_have_count(1)
        expect(page.locator("#validations")).to_contain_text("2 rules, 0 failed")
        expect(page.locator('#profile [data-column="price"] svg rect')).not_to_have_count(0)
        page.get_by_role("link", name="Compare with v1").click()
        expect(page.locator("h2", has_text="against v1")).to_be_visible()
        expect(page.locator('#profile [data-column="price"]')).to_contain_text("50")
        page.locator("#data-versions").get_by_role("link", name="v1", exact=True).click()
        expect(page.locator('#validations details[data-passed="false"] tr.diff')).to_have_count(1)
        expect(page.locator("#validations")).to_contain_text("row_count")
        page.goto(URL + "/#/datasets")
        expect(page.locator("#datasets")).to_contain_text("basket")

        # Writes through the API the client uses: rename, tag, describe, delete and restore.
        page.goto(f"{URL}/#/experiments/{exp_id}/runs/{runs['child-2']}")
        page.locator("#rename-run").click()
        page.locator("dialog input").fill("renamed-run")
        page.locator("dialog button[value=ok]").click()
        expect(page.locator("h1")).to_contain_text("renamed-run")
        assert client.get_run(runs["child-2"]).info.run_name == "renamed-run"
        page.locator("#add-tag input[name=key]").fill("stage")
        page.locator("#add-tag input[name=value]").fill("review")
        page.locator("#add-tag button").click()
        expect(page.locator("#tags")).to_contain_text("review")
        assert client.get_run(runs["child-2"]).data.tags["stage"] == "review"
        page.locator("#delete-run").click()
        expect(page.locator("#restore-run")).to_be_visible()
        assert client.get_run(runs["child-2"]).info.lifecycle_stage == "deleted"
        page.locator("#restore-run").click()
        expect(page.locator("#delete-run")).to_be_visible()
        assert client.get_run(runs["child-2"]).info.lifecycle_stage == "active"

        # Registry: move an alias, describe the model; a version's page at MLflow's address.
        # (The run page just left links to its registered versions too: wait for the list.)
        page.goto(URL + "/#/models")
        page.locator("#models").get_by_role("link", name="ui-model", exact=True).click()
        expect(page.locator("#versions tbody tr")).to_have_count(2)
        page.locator("#set-alias input[name=alias]").fill("champion")
        page.locator("#set-alias select").select_option("2")
        page.locator("#set-alias button").click()
        expect(page.locator("#aliases")).to_contain_text("v2")
        assert client.get_model_version_by_alias("ui-model", "champion").version == "2"
        expect(page.locator("#alias-history tbody tr")).to_have_count(2)
        expect(page.locator("#alias-history tbody tr").first).to_contain_text("→ v2")
        expect(page.locator("#alias-history tbody tr").last).to_contain_text("→ v1")
        page.locator("#edit-description").click()
        page.locator("dialog input").fill("churn classifier")
        page.locator("dialog button[value=ok]").click()
        expect(page.locator("#description")).to_contain_text("churn classifier")
        assert client.get_registered_model("ui-model").description == "churn classifier"
        # A fairness evaluation on the version's card (as `keel models fairness` keeps it).
        rates = lambda g, n, s, t, f: {"group": g, "count": n, "positives": n // 2, "selection_rate": s,
                                       "true_positive_rate": t, "false_positive_rate": f, "accuracy": 0.75}
        fairness = [{"sensitive": "sex", "target": "y", "positive_label": "1", "dataset": "train-frame@1",
                     "dataset_hash": "0" * 64, "time": 1765000000000, "overall": rates("all", 20, 0.5, 0.6, 0.4),
                     "groups": [rates("f", 10, 0.375, 0.5, 0.25), rates("m", 10, 0.625, 0.7, 0.55)],
                     "demographic_parity_difference": 0.25, "demographic_parity_ratio": 0.6,
                     "equalized_odds_difference": 0.3, "equalized_odds_ratio": 0.454545}]
        client.set_model_version_tag("ui-model", "2", "keel.card.fairness", json.dumps(fairness))
        page.goto(URL + "/#/models/ui-model/versions/2")
        expect(page.locator("h1")).to_have_text("ui-model version 2")
        expect(page.locator("#lineage")).to_contain_text("renamed-run")
        expect(page.locator("#lineage")).to_contain_text("@champion")
        expect(page.locator("#lineage")).to_contain_text("train-frame")
        # The model card: bars per group, the figures, and what a person writes in it.
        card = page.locator("#model-card")
        expect(card.locator('.fairness[data-sensitive="sex"] rect[data-rate="selection_rate"]')).to_have_count(2)
        expect(card.locator('rect[data-group="m"][data-rate="selection_rate"]')).to_have_attribute("width", "225")
        expect(card.locator(".dpd")).to_have_text("0.250")
        expect(card.locator("#card-missing")).to_contain_text("intended use")
        expect(card.locator("#intended-use")).to_contain_text("Not written yet")
        card.locator("#edit-intended-use").click()
        page.locator("dialog input").fill("Churn screening of retail customers")
        page.locator("dialog button[value=ok]").click()
        expect(page.locator("#intended-use")).to_contain_text("Churn screening of retail customers")
        tags = client.get_model_version("ui-model", "2").tags
        assert tags["keel.card.intended_use"] == "Churn screening of retail customers", tags
        expect(page.locator("#card-missing")).not_to_contain_text("intended use")
        with urllib.request.urlopen(URL + "/api/keel/v1/model-versions/card?name=ui-model&version=2&format=markdown") as r:
            md = r.read().decode()
        assert "Churn screening of retail customers" in md and "| m | 10 | 5 | 0.625 |" in md, md
        page.locator('#aliases button[aria-label="Remove alias champion"]').click()
        expect(page.locator("#aliases")).not_to_contain_text("champion")
        assert "champion" not in client.get_registered_model("ui-model").aliases

        # Keyboard: the skip link, then the tab strip with arrow keys.
        page.goto(f"{URL}/#/experiments/{exp_id}/runs/{runs['child-0']}")
        expect(page.locator("h1")).to_contain_text("child-0")
        page.locator("#tab-overview").focus()
        page.keyboard.press("ArrowRight")
        expect(page.locator('figure.chart[data-key="loss"]')).to_be_visible()

        # Dark mode follows the system.
        dark = browser.new_page(color_scheme="dark")
        dark.goto(URL + "/#/experiments")
        expect(dark.locator("#experiments")).to_be_visible()
        bg = dark.evaluate("() => getComputedStyle(document.body).backgroundColor")
        assert bg == "rgb(15, 20, 25)", bg
        dark.close()

        # Monitoring: the two checks keel recorded of the served price model (a report, and a
        # monitor file's check whose min_rows alert fired).
        page.goto(URL + "/#/monitoring")
        expect(page.locator("#monitored tbody tr")).to_have_count(1)
        expect(page.locator("#monitored")).to_contain_text("too few rows")
        page.locator("#monitored").get_by_role("link", name="price", exact=True).click()
        expect(page.locator("h1")).to_have_text("price")
        expect(page.locator("#drift-share")).to_have_attribute("data-points", "2")
        expect(page.locator("#drift-x1 circle")).to_have_count(2)
        expect(page.locator("#latency")).not_to_have_attribute("data-points", "0")
        expect(page.locator("#alerts tbody tr")).to_have_count(1)
        expect(page.locator("#alerts")).to_contain_text("too few rows")
        # The retraining history holds the dry run, not counted as a check.
        expect(page.locator('#retraining tbody tr[data-step="retrain"]')).to_have_count(1)
        expect(page.locator("#retraining")).to_contain_text("dry-run")
        expect(page.locator("#retraining")).to_contain_text("would train on shop@1")
        expect(page.frame_locator("#latest-report").locator("h1")).to_have_text("Drift of price/1")
        expect(page.frame_locator("#latest-report").locator('[data-column="x1"] svg').first).to_be_visible()

        # A `keel serve` process's status page: its model, version, spec, share and requests.
        serve_url = os.environ.get("KEEL_SERVE_URL")
        if serve_url:
            page.goto(serve_url + "/")
            row = page.locator('table[data-model="price"] tr[data-role="primary"]')
            expect(row).to_contain_text("v1")
            expect(row).to_contain_text("price/1")
            expect(row).to_contain_text("100%")
            expect(row.locator("td").nth(8)).to_have_text("3")
            expect(page.locator("#summary")).to_contain_text("ready")

        assert not errors, errors
        browser.close()
    print("the web UI shows what the client logged")


if __name__ == "__main__":
    main()
