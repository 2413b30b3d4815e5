"""GET /metrics through the whole app: no session, but the scrape token or an allowed
network; the admin's token and settings API; the Host check still in front."""

from __future__ import annotations

import pytest

from appliance.recorder.index import RecordingIndex
from appliance.web.accounts import AccountStore
from appliance.web.app import create_app
from appliance.web.services import WebPaths

ADMIN = {"username": "owner", "password": "correct horse battery"}
OUTSIDE = {"REMOTE_ADDR": "192.0.2.7"}


@pytest.fixture
def app(tmp_path):
    data = tmp_path / "data"
    index = RecordingIndex(data)
    index.write_status("door", "recording", "", 10**15, {"reconnects": 4})
    index.close()
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    app = create_app(data, accounts,
                     paths=WebPaths(config=tmp_path / "config" / "recorder.toml"))
    yield app
    accounts.close()


@pytest.fixture
def admin(app):
    client = app.test_client()
    resp = client.post("/api/v1/setup", json=ADMIN)
    assert resp.status_code == 201
    client.csrf = resp.json["csrf"]
    return client


def scrape(app, token: str | None = None, **kwargs):
    headers = kwargs.pop("headers", {})
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return app.test_client().get("/metrics", headers=headers, environ_base=OUTSIDE, **kwargs)


def test_without_the_token_nothing_is_revealed(app, admin):
    basic = {"Authorization": "Basic b3duZXI6eA=="}
    answers = [scrape(app), scrape(app, "x" * 43), scrape(app, headers=basic)]
    admin.get("/api/v1/metrics/token")          # a token exists now: still the same answer
    answers += [scrape(app), scrape(app, "wrong")]
    for resp in answers:
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert b"vigil_" not in resp.data
    assert len({r.data for r in answers}) == 1


def test_the_token_from_the_admin_api_lets_prometheus_scrape(app, admin):
    token = admin.get("/api/v1/metrics/token").json
    assert token["path"] == "/metrics"
    assert token["header"] == f"Authorization: Bearer {token['token']}"
    resp = scrape(app, token["token"])
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    assert b'vigil_camera_reconnects_total{camera="door"} 4.0' in resp.data
    assert resp.headers["Cache-Control"] == "no-store"
    om = scrape(app, token["token"],
                headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.mimetype == "application/openmetrics-text" and om.data.endswith(b"# EOF\n")


def test_a_session_is_not_a_scrape_token(admin):
    """The admin's own browser session does not open /metrics: only the token does."""
    assert admin.get("/metrics", environ_base=OUTSIDE).status_code == 401


def test_regenerating_the_token_shuts_out_the_old_one(app, admin):
    old = admin.get("/api/v1/metrics/token").json["token"]
    assert scrape(app, old).status_code == 200
    resp = admin.post("/api/v1/metrics/token", json={}, headers={"X-CSRF-Token": admin.csrf})
    assert resp.status_code == 200
    new = resp.json["token"]
    assert new != old and admin.get("/api/v1/metrics/token").json["token"] == new
    assert scrape(app, old).status_code == 401
    assert scrape(app, new).status_code == 200
    audit = app.config["VIGIL_ACCOUNTS"].audit_log()
    assert audit[0]["what"] == "metrics_token_regenerated"
    assert admin.post("/api/v1/metrics/token", json={"token": "mine"},
                      headers={"X-CSRF-Token": admin.csrf}).status_code == 400
    assert admin.post("/api/v1/metrics/token", json={}).status_code == 403      # no CSRF


def test_only_admins_see_or_change_the_token(app, admin):
    for role in ("operator", "viewer"):
        name = f"user-{role}"
        admin.post("/api/v1/users", json={"username": name, "password": "a long password",
                                           "role": role}, headers={"X-CSRF-Token": admin.csrf})
        client = app.test_client()
        csrf = client.post("/api/v1/login", json={"username": name,
                                                  "password": "a long password"}).json["csrf"]
        assert client.get("/api/v1/metrics/token").status_code == 403
        assert client.post("/api/v1/metrics/token", json={},
                           headers={"X-CSRF-Token": csrf}).status_code == 403
        assert client.put("/api/v1/metrics/settings", json={"allowed_networks": []},
                          headers={"X-CSRF-Token": csrf}).status_code == 403
    assert app.test_client().get("/api/v1/metrics/token").status_code == 401


def test_an_allowed_network_scrapes_without_the_token(app, admin):
    put = lambda body: admin.put("/api/v1/metrics/settings", json=body,  # noqa: E731
                                 headers={"X-CSRF-Token": admin.csrf})
    assert admin.get("/api/v1/metrics/settings").json["allowed_networks"] == []
    assert scrape(app).status_code == 401
    resp = put({"allowed_networks": ["192.0.2.0/24"]})
    assert resp.status_code == 200 and resp.json["allowed_networks"] == ["192.0.2.0/24"]
    assert scrape(app).status_code == 200
    inside_v6 = app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "::ffff:192.0.2.9"})
    assert inside_v6.status_code == 200
    elsewhere = app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert elsewhere.status_code == 401
    for bad in (["192.0.2.7/24"], ["0.0.0.0/0"], ["evil"], "192.0.2.0/24", [1]):
        resp = put({"allowed_networks": bad})
        assert resp.status_code == 400 and resp.json["error"], bad
    assert put({"allowed_networks": [], "extra": 1}).status_code == 400
    assert admin.get("/api/v1/metrics/settings").json["allowed_networks"] == ["192.0.2.0/24"]
    assert put({"allowed_networks": []}).status_code == 200
    assert scrape(app).status_code == 401
    assert [a["what"] for a in app.config["VIGIL_ACCOUNTS"].audit_log()[:2]] == \
        ["metrics_settings_changed"] * 2


def test_the_host_check_still_applies(app, admin):
    token = admin.get("/api/v1/metrics/token").json["token"]
    resp = scrape(app, token, headers={"Host": "evil.example"})
    assert resp.status_code == 421 and b"vigil_" not in resp.data
    assert scrape(app, token, headers={"Host": "192.168.1.20:8080"}).status_code == 200


def test_a_server_without_a_config_path_serves_nobody(tmp_path):
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    app = create_app(tmp_path / "data", accounts)
    client = app.test_client()
    assert client.post("/api/v1/setup", json=ADMIN).status_code == 201
    assert client.get("/api/v1/metrics/token").status_code == 503
    assert client.get("/metrics").status_code == 401
    accounts.close()
