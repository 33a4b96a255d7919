#!/usr/bin/env python3
"""Drives the official mlflow client and MLflow's AuthServiceClient against `keel server --auth`
(MLFLOW_TRACKING_URI; the first admin is `admin` with the password in KEEL_ADMIN_PASSWORD) as a
team would: users, grants, a read-only user refused on writes, a MANAGE user granting others,
searches that answer only what the caller may read (with correct pages), access tokens that
expire and are revoked, passwords changed. Each user switches in by the environment variables
the mlflow client reads (MLFLOW_TRACKING_USERNAME/PASSWORD, MLFLOW_TRACKING_TOKEN). Exits
non-zero on the first failed check.
"""

import contextlib
import os
import sys
import tempfile
import time
import uuid

import mlflow
import requests
from mlflow.exceptions import MlflowException, RestException
from mlflow.server.auth.client import AuthServiceClient
from mlflow.tracking import MlflowClient

URI = os.environ["MLFLOW_TRACKING_URI"].rstrip("/")
ADMIN = ("admin", os.environ["KEEL_ADMIN_PASSWORD"])
CHECKS = 0


def check(cond, what):
    global CHECKS
    if not cond:
        raise AssertionError(f"check failed: {what}")
    CHECKS += 1


def refused(fn, status, code, what):
    """`fn()` fails with HTTP `status` and MLflow's `code`."""
    try:
        fn()
    except RestException as e:
        check(e.error_code == code, f"{what}: error_code {e.error_code!r} == {code!r} ({e})")
        check(e.get_http_status_code() == status, f"{what}: HTTP {e.get_http_status_code()}")
        return e
    except MlflowException as e:
        raise AssertionError(f"check failed: {what}: not a REST error: {e}") from e
    raise AssertionError(f"check failed: {what}: no error raised")


@contextlib.contextmanager
def as_user(user=None, password=None, token=None):
    """Runs the block with the mlflow client's credentials set to these."""
    keys = ["MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"]
    saved = {k: os.environ.pop(k, None) for k in keys}
    if user is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"] = user
        os.environ["MLFLOW_TRACKING_PASSWORD"] = password
    if token is not None:
        os.environ["MLFLOW_TRACKING_TOKEN"] = token
    try:
        yield
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


def rest(method, path, auth, **kw):
    """A raw request to the server (for the endpoints the installed client no longer wraps)."""
    headers = kw.pop("headers", {})
    if isinstance(auth, str):
        headers["Authorization"] = f"Bearer {auth}"
        auth = None
    return requests.request(method, URI + path, auth=auth, headers=headers, timeout=30, **kw)


def main():
    suffix = uuid.uuid4().hex[:6]
    client = MlflowClient()
    auth = AuthServiceClient(URI)

    # Nobody signed in: 401 with a Basic challenge; a wrong password too.
    r = requests.get(URI + "/api/2.0/mlflow/experiments/search", timeout=30)
    check(r.status_code == 401, f"anonymous search: {r.status_code}")
    check(r.headers.get("WWW-Authenticate", "").startswith("Basic"), "Basic challenge")
    with as_user():
        refused(lambda: client.search_experiments(), 401, "UNAUTHENTICATED", "no credentials")
    with as_user("admin", "wrong"):
        refused(lambda: client.search_experiments(), 401, "UNAUTHENTICATED", "wrong password")
    check(requests.get(URI + "/health", timeout=30).status_code == 200, "health stays open")

    # The admin creates users with MLflow's own client.
    pw = {name: f"{name}-pw-{suffix}" for name in ("alice", "bob", "carol")}
    names = {name: f"{name}-{suffix}" for name in pw}
    with as_user(*ADMIN):
        for n in pw:
            u = auth.create_user(names[n], pw[n])
            check(u.username == names[n] and not u.is_admin and u.id > 0, f"create {n}")
        refused(
            lambda: auth.create_user(names["alice"], "x"),
            400,
            "RESOURCE_ALREADY_EXISTS",
            "a taken username",
        )
        check(auth.get_user(names["bob"]).username == names["bob"], "get_user")
    alice, bob, carol = ((names[n], pw[n]) for n in ("alice", "bob", "carol"))

    # Alice creates an experiment and a run: she manages it.
    with as_user(*alice):
        exp_id = client.create_experiment(f"alice-exp-{suffix}")
        run = client.create_run(exp_id)
        client.log_param(run.info.run_id, "lr", "0.1")
        client.log_metric(run.info.run_id, "loss", 0.5, step=0)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "notes.txt")
            with open(path, "w") as f:
                f.write("alice's notes")
            client.log_artifact(run.info.run_id, path)
        r = rest(
            "GET",
            "/api/2.0/mlflow/experiments/permissions/get",
            alice,
            params={"experiment_id": exp_id, "username": names["alice"]},
        )
        check(r.status_code == 200, f"get own permission: {r.status_code} {r.text}")
        ep = r.json()["experiment_permission"]
        check(ep["permission"] == "MANAGE" and ep["experiment_id"] == exp_id, f"creator: {ep}")
        me = rest("GET", "/api/2.0/mlflow/users/current", alice).json()["user"]
        check(me["username"] == names["alice"], "users/current")

    # Bob holds no grant: the default READ lets him read, not write.
    with as_user(*bob):
        check(client.get_experiment(exp_id).name == f"alice-exp-{suffix}", "bob reads")
        check(client.get_run(run.info.run_id).data.params["lr"] == "0.1", "bob reads the run")
        check(client.list_artifacts(run.info.run_id)[0].path == "notes.txt", "bob lists")
        with tempfile.TemporaryDirectory() as d:
            got = client.download_artifacts(run.info.run_id, "notes.txt", d)
            check(open(got).read() == "alice's notes", "bob downloads the artifact")
        refused(
            lambda: client.log_metric(run.info.run_id, "loss", 0.4),
            403,
            "PERMISSION_DENIED",
            "bob logs with READ",
        )
        refused(lambda: client.create_run(exp_id), 403, "PERMISSION_DENIED", "bob runs")
        refused(
            lambda: client.delete_experiment(exp_id), 403, "PERMISSION_DENIED", "bob deletes"
        )
        refused(
            lambda: auth.grant_user_permission(names["carol"], "experiment", exp_id, "READ"),
            403,
            "PERMISSION_DENIED",
            "bob grants without MANAGE",
        )
        refused(
            lambda: auth.create_user("mallory", "x"), 403, "PERMISSION_DENIED", "bob adds users"
        )
        refused(
            lambda: auth.get_user(names["alice"]),
            403,
            "PERMISSION_DENIED",
            "bob reads another user",
        )

    # Alice (MANAGE) grants Bob EDIT with MLflow's client: he logs, still cannot delete.
    with as_user(*alice):
        auth.grant_user_permission(names["bob"], "experiment", exp_id, "EDIT")
        got = auth.get_user_permission(names["bob"], "experiment", exp_id)
        check(got.permission == "EDIT" and got.allowed, f"effective EDIT: {got.permission}")
    with as_user(*bob):
        client.log_metric(run.info.run_id, "loss", 0.4, step=1)
        bob_run = client.create_run(exp_id)
        client.set_terminated(bob_run.info.run_id)
        refused(
            lambda: client.delete_run(bob_run.info.run_id),
            403,
            "PERMISSION_DENIED",
            "EDIT cannot delete",
        )
    with as_user(*alice):
        hist = client.get_metric_history(run.info.run_id, "loss")
        check([m.value for m in hist] == [0.5, 0.4], "bob's metric landed")

    # A logged model follows its experiment, however its id is spelled in the path.
    with as_user(*alice):
        lm = client.create_logged_model(experiment_id=exp_id, name="alice-lm")
    encoded = "".join(f"%{b:02X}" for b in lm.model_id.encode())
    for spelled in (lm.model_id, encoded):
        r = rest("DELETE", f"/api/2.0/mlflow/logged-models/{spelled}", bob)
        check(r.status_code == 403, f"bob deletes a logged model as {spelled!r}: {r.status_code}")
    with as_user(*alice):
        check(client.get_logged_model(lm.model_id).name == "alice-lm", "the logged model stays")

    # MLflow's classic grant endpoints: Carol gets NO_PERMISSIONS and loses even reading.
    def grant(method, op, body):
        return rest(method, f"/api/2.0/mlflow/experiments/permissions/{op}", alice, json=body)

    r = grant("POST", "create", {"experiment_id": exp_id, "username": names["carol"], "permission": "READ"})
    check(r.status_code == 200, f"classic create: {r.status_code} {r.text}")
    check(r.json()["experiment_permission"]["permission"] == "READ", "classic create shape")
    r = grant("POST", "create", {"experiment_id": exp_id, "username": names["carol"], "permission": "READ"})
    check(r.status_code == 400 and r.json()["error_code"] == "RESOURCE_ALREADY_EXISTS", "dup")
    r = grant("PATCH", "update", {"experiment_id": exp_id, "username": names["carol"], "permission": "NO_PERMISSIONS"})
    check(r.status_code == 200 and r.json() == {}, f"classic update: {r.text}")
    r = grant("PATCH", "update", {"experiment_id": exp_id, "username": names["carol"], "permission": "WRITE"})
    check(r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", "bad level")
    with as_user(*carol):
        refused(lambda: client.get_experiment(exp_id), 403, "PERMISSION_DENIED", "carol reads")
        refused(lambda: client.get_run(run.info.run_id), 403, "PERMISSION_DENIED", "carol's run")
        refused(
            lambda: client.search_runs([exp_id]), 403, "PERMISSION_DENIED", "carol searches runs"
        )
        with tempfile.TemporaryDirectory() as d:
            try:
                client.download_artifacts(run.info.run_id, "notes.txt", d)
                raise AssertionError("check failed: carol downloaded an artifact")
            except MlflowException:
                check(True, "carol cannot download")
        seen = [e.experiment_id for e in client.search_experiments()]
        check(exp_id not in seen, "carol's search leaves the experiment out")
    with as_user(*bob):
        check(exp_id in [e.experiment_id for e in client.search_experiments()], "bob sees it")
    r = grant("DELETE", "delete", {"experiment_id": exp_id, "username": names["carol"]})
    check(r.status_code == 200, f"classic delete: {r.text}")
    with as_user(*carol):
        check(client.get_experiment(exp_id).experiment_id == exp_id, "default READ again")

    # Registered models: creator manages; searches hold only what may be read, page by page.
    with as_user(*alice):
        model = f"churn-{suffix}"
        client.create_registered_model(model)
        client.create_model_version(model, f"runs:/{run.info.run_id}/model", run.info.run_id)
        hidden = []
        for i in range(6):
            name = f"page-{suffix}-{i}"
            client.create_registered_model(name)
            if i % 2 == 0:
                auth.grant_user_permission(names["carol"], "registered_model", name, "NO_PERMISSIONS")
                hidden.append(name)
        r = rest(
            "POST",
            "/api/2.0/mlflow/registered-models/permissions/create",
            alice,
            json={"name": model, "username": names["bob"], "permission": "EDIT"},
        )
        check(r.status_code == 200, f"model grant: {r.text}")
        check(r.json()["registered_model_permission"]["name"] == model, "model grant shape")
    with as_user(*bob):
        v = client.create_model_version(model, f"runs:/{run.info.run_id}/model", run.info.run_id)
        check(v.version == "2", "bob adds a version with EDIT")
        refused(
            lambda: client.delete_registered_model(model),
            403,
            "PERMISSION_DENIED",
            "EDIT cannot delete a model",
        )
    with as_user(*carol):
        refused(
            lambda: client.create_model_version(model, "runs:/x/model"),
            403,
            "PERMISSION_DENIED",
            "carol adds a version with READ",
        )
        names_seen, token = [], None
        while True:
            page = client.search_registered_models(
                filter_string=f"name LIKE 'page-{suffix}-%'", max_results=1, page_token=token
            )
            names_seen += [m.name for m in page]
            token = page.token
            if not token:
                break
        expected = sorted(f"page-{suffix}-{i}" for i in range(6) if i % 2 == 1)
        check(sorted(names_seen) == expected, f"carol's pages: {names_seen} != {expected}")
        check(len(set(names_seen)) == len(names_seen), "no model twice across pages")
        versions = client.search_model_versions(f"name = '{hidden[0]}'")
        check(len(versions) == 0, "versions of a hidden model are hidden")
        refused(
            lambda: client.get_registered_model(hidden[0]),
            403,
            "PERMISSION_DENIED",
            "carol gets a hidden model",
        )

    # Roles (groups) with MLflow 3's client: members inherit their permissions; a user's own
    # grant still decides over them.
    dave = (f"dave-{suffix}", f"dave-pw-{suffix}")
    with as_user(*ADMIN):
        auth.create_user(*dave)
        role = auth.create_role("default", f"analysts-{suffix}", description="data team")
        check(role.name == f"analysts-{suffix}" and role.workspace == "default", "role made")
        edit = auth.add_role_permission(role.id, "experiment", exp_id, "EDIT")
        hide = auth.add_role_permission(role.id, "registered_model", hidden[1], "NO_PERMISSIONS")
        auth.add_role_permission(role.id, "registered_model", "*", "READ")
        refused(
            lambda: auth.add_role_permission(role.id, "scorer", "*", "READ"),
            400,
            "INVALID_PARAMETER_VALUE",
            "a resource type keel does not have",
        )
        got = auth.assign_role(dave[0], role.id)
        check(got.role_id == role.id, "assigned")
        check([r.name for r in auth.list_user_roles(dave[0])] == [role.name], "user's roles")
        check(len(auth.list_role_users(role.id)) == 1, "role's users")
        check(len(auth.list_role_permissions(role.id)) == 3, "role's permissions")
        check(role.id in [r.id for r in auth.list_all_roles()], "roles listed")
    with as_user(*dave):
        client.log_metric(run.info.run_id, "from_role", 1.0)
        check(
            auth.get_user_permission(dave[0], "experiment", exp_id).permission == "EDIT",
            "EDIT through the role",
        )
        seen = [m.name for m in client.search_registered_models(f"name LIKE 'page-{suffix}-%'")]
        check(hidden[1] not in seen and hidden[0] in seen, f"role hides one model: {seen}")
        refused(
            lambda: auth.create_role("default", "mine"), 403, "PERMISSION_DENIED", "dave makes roles"
        )
    with as_user(*alice):
        # A renamed model keeps the role's grant on it.
        client.rename_registered_model(hidden[1], hidden[1] + "-renamed")
    with as_user(*dave):
        refused(
            lambda: client.get_registered_model(hidden[1] + "-renamed"),
            403,
            "PERMISSION_DENIED",
            "the role's grant follows a rename",
        )
    with as_user(*alice):
        auth.grant_user_permission(dave[0], "experiment", exp_id, "READ")
    with as_user(*dave):
        refused(
            lambda: client.log_metric(run.info.run_id, "from_role", 2.0),
            403,
            "PERMISSION_DENIED",
            "a user's own grant decides over the role's",
        )
    with as_user(*alice):
        auth.revoke_user_permission(dave[0], "experiment", exp_id)
    with as_user(*ADMIN):
        auth.update_role_permission(edit.id, "READ")
    with as_user(*dave):
        refused(
            lambda: client.log_metric(run.info.run_id, "from_role", 3.0),
            403,
            "PERMISSION_DENIED",
            "the role's lowered grant",
        )
    with as_user(*ADMIN):
        auth.remove_role_permission(hide.id)
        auth.unassign_role(dave[0], role.id)
        check(auth.list_user_roles(dave[0]) == [], "unassigned")
        auth.delete_role(role.id)
        refused(lambda: auth.get_role(role.id), 404, "RESOURCE_DOES_NOT_EXIST", "role deleted")

    # Access tokens: made by their user with a password, sent as MLFLOW_TRACKING_TOKEN.
    def make_token(who, **body):
        r = rest("POST", "/api/keel/v1/tokens", who, json=body)
        check(r.status_code == 200, f"token: {r.status_code} {r.text}")
        return r.json()

    full = make_token(alice, name="ci")
    check(full["token"].startswith("keel_"), "token format")
    with as_user(token=full["token"]):
        client.log_metric(run.info.run_id, "loss", 0.3, step=2)
        check(client.get_experiment(exp_id).experiment_id == exp_id, "token reads")
        refused(
            lambda: rest_json("POST", "/api/keel/v1/tokens", full["token"], {"name": "more"}),
            403,
            "PERMISSION_DENIED",
            "a token cannot mint tokens",
        )
    ro = make_token(alice, name="dashboards", scope={"read_only": True})
    with as_user(token=ro["token"]):
        check(client.get_run(run.info.run_id).info.run_id == run.info.run_id, "read-only reads")
        refused(
            lambda: client.log_metric(run.info.run_id, "loss", 0.2),
            403,
            "PERMISSION_DENIED",
            "read-only token writes",
        )
        refused(
            lambda: client.create_experiment(f"ro-{suffix}"),
            403,
            "PERMISSION_DENIED",
            "read-only token creates",
        )
    with as_user(*alice):
        other = client.create_experiment(f"other-{suffix}")
    scoped = make_token(alice, name="one-exp", scope={"experiments": [other]})
    with as_user(token=scoped["token"]):
        client.create_run(other)
        refused(
            lambda: client.get_experiment(exp_id),
            403,
            "PERMISSION_DENIED",
            "a token limited to another experiment",
        )
        seen = [e.experiment_id for e in client.search_experiments()]
        check(seen == [other], f"a scoped token's search: {seen}")
    admin_ro = make_token(ADMIN, name="admin-dashboards", scope={"read_only": True})
    with as_user(token=admin_ro["token"]):
        check(client.get_experiment(exp_id).experiment_id == exp_id, "an admin's read-only token reads")
        refused(
            lambda: auth.create_user(f"via-token-{suffix}", "pw"),
            403,
            "PERMISSION_DENIED",
            "an admin's read-only token creates a user",
        )
        refused(
            lambda: rest_json("POST", "/api/keel/v1/tokens", admin_ro["token"], {"name": "wider"}),
            403,
            "PERMISSION_DENIED",
            "an admin's read-only token mints a wider one",
        )
    soon = make_token(alice, name="short", expiration_time=int(time.time() * 1000) + 1500)
    with as_user(token=soon["token"]):
        check(client.get_experiment(exp_id).experiment_id == exp_id, "before expiry")
        time.sleep(2.0)
        refused(lambda: client.get_experiment(exp_id), 401, "UNAUTHENTICATED", "expired")
    r = rest("DELETE", f"/api/keel/v1/tokens/{full['access_token']['id']}", alice)
    check(r.status_code == 200, f"revoke: {r.text}")
    with as_user(token=full["token"]):
        refused(lambda: client.get_experiment(exp_id), 401, "UNAUTHENTICATED", "revoked")
    listed = rest("GET", "/api/keel/v1/tokens", alice).json()["access_tokens"]
    check(len(listed) == 4 and all("hash" not in t for t in listed), "tokens listed, no secret")
    check(
        any(t["id"] == full["access_token"]["id"] and "revoked_time" in t for t in listed),
        "revocation listed",
    )
    with as_user(token="keel_aaaaaaaaaaaa_forged"):
        refused(lambda: client.get_experiment(exp_id), 401, "UNAUTHENTICATED", "forged token")

    # Passwords: one's own needs the current one; nobody else's without being an admin.
    with as_user(*alice):
        refused(
            lambda: auth.update_user_password(names["alice"], "new-pass"),
            400,
            "INVALID_PARAMETER_VALUE",
            "own password without the current one",
        )
        auth.update_user_password(names["alice"], "new-pass", current_password=alice[1])
    with as_user(*alice):
        refused(lambda: client.get_experiment(exp_id), 401, "UNAUTHENTICATED", "old password")
    alice = (names["alice"], "new-pass")
    with as_user(*alice):
        check(client.get_experiment(exp_id).experiment_id == exp_id, "new password")
    with as_user(*bob):
        refused(
            lambda: auth.update_user_password(names["alice"], "bobs-choice"),
            403,
            "PERMISSION_DENIED",
            "bob sets alice's password",
        )

    # Admin flags and deletion.
    with as_user(*ADMIN):
        auth.update_user_admin(names["bob"], True)
    with as_user(*bob):
        check(auth.get_user(names["alice"]).username == names["alice"], "bob as admin")
        client.delete_run(bob_run.info.run_id)
    with as_user(*ADMIN):
        auth.update_user_admin(names["bob"], False)
        auth.delete_user(names["carol"])
        refused(lambda: auth.get_user(names["carol"]), 404, "RESOURCE_DOES_NOT_EXIST", "deleted")
        refused(
            lambda: auth.delete_user("admin"), 400, "BAD_REQUEST", "an admin deletes themself"
        )
    with as_user(*carol):
        refused(lambda: client.get_experiment(exp_id), 401, "UNAUTHENTICATED", "deleted user")
    with as_user(*bob):
        refused(
            lambda: auth.get_user(names["alice"]), 403, "PERMISSION_DENIED", "no longer admin"
        )

    print(f"auth: {CHECKS} checks passed against {URI}")


def rest_json(method, path, token, body):
    """A raw request whose refusal is raised as the mlflow client would raise it."""
    r = rest(method, path, token, json=body)
    if r.status_code != 200:
        raise RestException(r.json())
    return r.json()


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
