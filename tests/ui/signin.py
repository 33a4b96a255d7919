"""keel's web UI signing in on `keel server --auth`, in a real browser (Debian's Chromium driven by
Playwright): the sign-in page, the session cookie (HttpOnly, SameSite=Strict), writes that carry
the session's CSRF value and writes that do not refused, another user's permissions shown as
refusals, signing out.

Usage: signin.py SERVER_URL, with KEEL_ADMIN_PASSWORD (the first admin `admin`'s). Every check
raises on failure; the last line printed is "the web UI signs in" when all passed.
"""

import logging
import os
import sys
import warnings

import requests
from mlflow import MlflowClient
from mlflow.server.auth.client import AuthServiceClient
from playwright.sync_api import expect, sync_playwright

URL = sys.argv[1].rstrip("/")
CHROMIUM = os.environ.get("KEEL_CHROMIUM", "/usr/bin/chromium")
warnings.filterwarnings("ignore")
logging.getLogger("mlflow").setLevel(logging.ERROR)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def as_user(user, password):
    os.environ["MLFLOW_TRACKING_USERNAME"] = user
    os.environ["MLFLOW_TRACKING_PASSWORD"] = password


def sign_in(page, user, password):
    page.goto(URL + "/")
    page.wait_for_url("**/login?next=*")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def main():
    as_user("admin", os.environ["KEEL_ADMIN_PASSWORD"])
    auth = AuthServiceClient(URL)
    auth.create_user("ann", "ann-password-1")
    auth.create_user("ben", "ben-password-1")
    client = MlflowClient(URL)
    as_user("ann", "ann-password-1")
    exp_id = client.create_experiment("ann-exp")

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
        )
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15_000)
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        # Unsigned: the UI sends the browser to its sign-in page, without a browser dialog.
        sign_in(page, "ann", "wrong-password")
        expect(page.locator("#error")).to_contain_text("Wrong username or password")
        page.get_by_label("Password").fill("ann-password-1")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#experiments")).to_contain_text("ann-exp")
        expect(page.locator("#whoami")).to_have_text("ann")
        cookie = next(c for c in context.cookies() if c["name"] == "keel_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie

        # A write from the UI carries the session's CSRF value; ann made it, so she manages it.
        page.get_by_role("button", name="New experiment").click()
        page.locator("dialog input").fill("made-in-the-ui")
        page.locator("dialog button[value=ok]").click()
        page.wait_for_url("**/#/experiments/*")
        made = client.get_experiment_by_name("made-in-the-ui")
        assert made is not None
        r = requests.get(
            URL + "/api/2.0/mlflow/experiments/permissions/get",
            params={"experiment_id": made.experiment_id, "username": "ann"},
            auth=("ann", "ann-password-1"),
            timeout=30,
        )
        assert r.json()["experiment_permission"]["permission"] == "MANAGE", r.text

        # The same cookie without the CSRF value (as another site's form would send it) is refused.
        status = page.evaluate(
            """() => fetch('/ajax-api/2.0/mlflow/experiments/create', {method: 'POST',
                 headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({name: 'no-csrf'})}).then(r => r.status)"""
        )
        assert status == 403, status
        assert client.get_experiment_by_name("no-csrf") is None

        # Signing out forgets the session: its cookie no longer signs anyone in.
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/login*")
        old = requests.get(
            URL + "/api/keel/v1/session", cookies={"keel_session": cookie["value"]}, timeout=30
        )
        assert old.status_code == 401, old.status_code

        # Ben holds the default READ: the UI shows ann's experiment and his refused delete.
        page.goto(URL + "/login")
        page.get_by_label("Username").fill("ben")
        page.get_by_label("Password").fill("ben-password-1")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#whoami")).to_have_text("ben")
        page.goto(URL + "/#/experiments")
        expect(page.locator("#experiments")).to_contain_text("ann-exp")
        page.get_by_role("button", name="Delete ann-exp").click()
        expect(page.locator("#toast")).to_contain_text("needs MANAGE")
        assert client.get_experiment(exp_id).lifecycle_stage == "active"
        assert not errors, errors
        browser.close()
    print("the web UI signs in")


if __name__ == "__main__":
    main()
