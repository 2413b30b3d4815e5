"""The first-boot wizard: resumable progress, a checklist, finished exactly once and
never re-entered (issue 9)."""

from __future__ import annotations

import json
import threading

import pytest

from appliance.web.accounts import AccountStore
from appliance.web.app import create_app

ADMIN = {"username": "owner", "password": "correct horse battery"}


@pytest.fixture
def app(tmp_path):
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    yield create_app(tmp_path / "data", accounts)
    accounts.close()


def admin_client(app):
    client = app.test_client()
    resp = client.post("/api/v1/setup", json=ADMIN)
    assert resp.status_code == 201
    client.environ_base["HTTP_X_CSRF_TOKEN"] = resp.json["csrf"]
    return client


def test_a_new_box_opens_on_the_wizard_and_its_api_waits_for_the_admin(app):
    client = app.test_client()
    assert client.get("/").headers["Location"].endswith("/setup")
    assert client.get("/setup").status_code == 200
    assert client.get("/api/v1/setup/wizard").status_code == 503


def test_progress_resumes_where_the_owner_stopped(app):
    client = admin_client(app)
    assert client.get("/api/v1/setup/wizard").json == {
        "steps": ["admin", "time", "network", "disks", "cameras", "retention", "summary"],
        "step": "admin", "finished": False}
    assert client.post("/api/v1/setup/wizard", json={"step": "network"}).status_code == 200
    fresh = app.test_client()  # another browser, after logging in
    token = fresh.post("/api/v1/login", json=ADMIN).json["csrf"]
    assert token and fresh.get("/api/v1/setup/wizard").json["step"] == "network"
    assert client.get("/").headers["Location"].endswith("/setup")  # not finished yet


@pytest.mark.parametrize("body", [{"step": "reboot"}, {"step": ["time"]}, {"step": None},
                                  {}, {"step": "time", "x": 1}, ["time"],
                                  {"step": "<script>alert(1)</script>"}])
def test_a_bad_step_is_refused_and_changes_nothing(app, body):
    client = admin_client(app)
    resp = client.post("/api/v1/setup/wizard", json=body)
    assert resp.status_code == 400 and "step" in resp.json["error"]
    assert client.get("/api/v1/setup/wizard").json["step"] == "admin"


def test_the_checklist_says_what_it_could_check(app):
    items = admin_client(app).get("/api/v1/setup/checklist").json["items"]
    by_name = {i["item"]: i for i in items}
    assert by_name["Accounts"]["ok"] is True and "no default password" in by_name["Accounts"]["detail"]
    # this bare server has no hwd, TLS, registry or licence: "cannot tell", never a crash
    for name in ("HTTPS", "Clock", "Recording disk", "Cameras", "Licence"):
        assert by_name[name]["ok"] is None, by_name[name]


def test_the_checklist_says_the_box_is_not_recording_without_a_data_volume(tmp_path):
    from appliance.web.services import WebPaths

    volumes = tmp_path / "data-volumes.json"   # as on the box before any disk is initialised
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    app = create_app(tmp_path / "data", accounts, paths=WebPaths(volumes=volumes))
    try:
        client = admin_client(app)
        disk = {i["item"]: i for i in client.get("/api/v1/setup/checklist").json["items"]}
        assert disk["Recording disk"]["ok"] is False
        assert "not recording" in disk["Recording disk"]["detail"]
        volumes.write_text(json.dumps({"volumes": [{"uuid": "0f3c9a1e-5b2d-4c6e-9a7f-1d2e3f4a5b6c",
                                                    "mountpoint": "/srv/vigil"}]}))
        disk = {i["item"]: i for i in client.get("/api/v1/setup/checklist").json["items"]}
        assert disk["Recording disk"]["ok"] is True
        assert "not recording" not in disk["Recording disk"]["detail"]
    finally:
        accounts.close()


def test_finishing_happens_once_and_the_wizard_cannot_be_entered_again(app):
    client = admin_client(app)
    assert client.post("/api/v1/setup/finish", json={}).status_code == 200
    assert client.post("/api/v1/setup/finish", json={}).status_code == 409
    resp = client.post("/api/v1/setup/wizard", json={"step": "time"})
    assert resp.status_code == 409 and "finished" in resp.json["error"]
    assert client.get("/setup").headers["Location"].endswith("/live")
    assert client.get("/").headers["Location"].endswith("/live")
    assert client.post("/api/v1/setup", json={"username": "mallory",
                                              "password": "another long one"}).status_code == 409
    audit = [e["what"] for e in client.get("/api/v1/audit").json["entries"]]
    assert "setup_finished" in audit


def test_concurrent_finishes_finish_once(app):
    admin_client(app)
    clients = []
    for _ in range(8):
        c = app.test_client()
        c.environ_base["HTTP_X_CSRF_TOKEN"] = c.post("/api/v1/login", json=ADMIN).json["csrf"]
        clients.append(c)
    codes = []
    barrier = threading.Barrier(len(clients))

    def finish(c):
        barrier.wait()
        codes.append(c.post("/api/v1/setup/finish", json={}).status_code)
    threads = [threading.Thread(target=finish, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(codes) == [200] + [409] * 7


def test_only_an_admin_runs_the_wizard(app):
    admin = admin_client(app)
    assert admin.post("/api/v1/users", json={"username": "guard", "password": "night shift 2026",
                                             "role": "operator"}).status_code == 201
    op = app.test_client()
    op.environ_base["HTTP_X_CSRF_TOKEN"] = op.post(
        "/api/v1/login", json={"username": "guard", "password": "night shift 2026"}).json["csrf"]
    assert op.get("/api/v1/setup/wizard").status_code == 403
    assert op.post("/api/v1/setup/wizard", json={"step": "time"}).status_code == 403
    assert op.post("/api/v1/setup/finish", json={}).status_code == 403
    assert op.get("/api/v1/setup/checklist").status_code == 403


def test_the_checklist_shows_the_certificate_fingerprint_the_browser_will_show(tmp_path):
    from appliance.web.certificate_api import IDENTITY
    from appliance.web.services import WebPaths
    from appliance.web.tls import DeviceIdentity, TlsStore

    identity = DeviceIdentity("vigil", ("192.0.2.10",))
    served = TlsStore(tmp_path / "tls").ensure(identity)
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    app = create_app(tmp_path / "data", accounts, paths=WebPaths(tls_dir=tmp_path / "tls"))
    app.config[IDENTITY] = lambda: identity
    try:
        items = {i["item"]: i for i in admin_client(app).get("/api/v1/setup/checklist").json["items"]}
        assert items["HTTPS"]["ok"] is True
        assert served.fingerprint_sha256 in items["HTTPS"]["detail"]
    finally:
        accounts.close()

