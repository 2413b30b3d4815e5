"""The web API's security: no default account, every route behind a session, CSRF,
sessions that really end, throttled logins, roles, Host checks (security.md A1, 5.5)."""

from __future__ import annotations

import threading

import pytest

from appliance.recorder.index import RecordingIndex, Segment
from appliance.web.accounts import AccountStore
from appliance.web.app import create_app
from appliance.web.security import PUBLIC, PUBLIC_PREFIXES

ADMIN = {"username": "owner", "password": "correct horse battery"}


@pytest.fixture
def app(tmp_path):
    data = tmp_path / "data"
    index = RecordingIndex(data)
    index.add_segment(Segment("door", 1, 10**15, 10**15 + 60 * 10**6, 10, "recordings/door/x.mp4"))
    index.close()
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    app = create_app(data, accounts)
    yield app
    accounts.close()


def setup_admin(client) -> str:
    resp = client.post("/api/v1/setup", json=ADMIN)
    assert resp.status_code == 201, resp.json
    return resp.json["csrf"]


def protected_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC or rule.endpoint.startswith(PUBLIC_PREFIXES):
            continue
        url = rule.rule.replace("<name>", "door").replace("<int:seg_id>", "1")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, url


def test_before_setup_everything_but_setup_says_setup_required(app):
    client = app.test_client()
    assert client.get("/api/v1/setup").json == {"needed": True}
    for method, url in protected_routes(app):
        resp = client.open(url, method=method, json={} if method != "GET" else None)
        assert resp.status_code == 503, (method, url, resp.status_code)
    assert client.post("/api/v1/login", json=ADMIN).status_code == 401  # no default account


def test_every_route_needs_a_session_whatever_else_is_sent(app):
    setup_admin(app.test_client())
    junk = [{}, {"Authorization": "Basic YWRtaW46MTEK"}, {"Cookie": "vigil_session=forged"},
            {"X-Forwarded-For": "127.0.0.1"}]
    routes = list(protected_routes(app))
    assert len(routes) >= 10
    for headers in junk:
        client = app.test_client()
        for method, url in routes:
            resp = client.open(url + "?auth=YWRtaW46MTEK", method=method, headers=headers,
                               json={} if method != "GET" else None)
            assert resp.status_code == 401, (method, url, headers, resp.status_code)


def test_two_concurrent_setups_make_exactly_one_admin(app):
    results = []

    def attempt(i):
        results.append(app.test_client().post(
            "/api/v1/setup", json={"username": f"admin{i}", "password": "another long one"}
        ).status_code)
    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [201] + [409] * 7
    assert len(app.config["VIGIL_ACCOUNTS"].users()) == 1
    assert app.test_client().post("/api/v1/setup", json=ADMIN).status_code == 409


def test_passwords_are_hashed_with_scrypt_and_weak_ones_refused(app, tmp_path):
    client = app.test_client()
    assert client.post("/api/v1/setup", json={"username": "owner", "password": "short"}
                       ).status_code == 400
    assert client.post("/api/v1/setup", json={"username": "owner",
                                              "password": "owner-password-1"}).status_code == 400
    setup_admin(client)
    import sqlite3
    db = sqlite3.connect(tmp_path / "accounts.sqlite3")
    [(stored,)] = db.execute("SELECT hash FROM users").fetchall()
    db.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("accounts.sqlite3*"))
    assert stored.startswith("$scrypt$n=16384,r=8,p=1$") and ADMIN["password"].encode() not in raw
    assert oct((tmp_path / "accounts.sqlite3").stat().st_mode & 0o777) == "0o600"


def test_csrf_and_content_type(app):
    client = app.test_client()
    csrf = setup_admin(client)
    body = {"username": "viewer1", "password": "a long password", "role": "viewer"}
    assert client.post("/api/v1/users", json=body).status_code == 403          # no token
    assert client.post("/api/v1/users", data="x", content_type="text/plain",
                       headers={"X-CSRF-Token": csrf}).status_code == 415    # not JSON
    assert client.post("/api/v1/users", data={"a": "b"}).status_code == 415  # a form post
    assert client.get("/api/v1/logout").status_code == 405                  # no GET changes
    assert client.post("/api/v1/users", json=body, headers={"X-CSRF-Token": csrf}
                       ).status_code == 201


def test_sessions_end_at_logout_and_password_change(app):
    client = app.test_client()
    csrf = setup_admin(client)
    cookie = client.get_cookie("vigil_session").value
    assert client.post("/api/v1/logout", json={}, headers={"X-CSRF-Token": csrf}).status_code == 200
    replay = app.test_client()
    replay.set_cookie("vigil_session", cookie)
    assert replay.get("/api/v1/me").status_code == 401                      # replay after logout
    csrf = client.post("/api/v1/login", json=ADMIN).json["csrf"]
    second = client.get_cookie("vigil_session").value
    assert second != cookie                                                 # a new session id
    other = app.test_client()
    other.post("/api/v1/login", json=ADMIN)
    assert client.post("/api/v1/password", json={"old": ADMIN["password"],
                                                 "new": "a new long password"},
                       headers={"X-CSRF-Token": csrf}).status_code == 200
    assert other.get("/api/v1/me").status_code == 401                       # every session ends
    assert client.get("/api/v1/me").status_code == 401


def test_login_throttling_locks_out_even_the_right_password(app):
    setup_admin(app.test_client())
    client = app.test_client()
    for _ in range(5):
        assert client.post("/api/v1/login", json={**ADMIN, "password": "wrong wrong wrong"}
                           ).status_code == 401
    assert client.post("/api/v1/login", json=ADMIN).status_code == 429
    assert client.get_cookie("vigil_session") is None  # a failed login leaves no session
    audit = [e["what"] for e in app.config["VIGIL_ACCOUNTS"].audit_log()]
    assert audit.count("login_failed") == 5 and "login_locked" in audit


def test_roles_and_camera_grants(app):
    admin = app.test_client()
    csrf = setup_admin(admin)
    for name, role, cams in (("watcher", "viewer", ["garden"]), ("guard", "operator", [])):
        assert admin.post("/api/v1/users", headers={"X-CSRF-Token": csrf}, json={
            "username": name, "password": "a long password", "role": role, "cameras": cams}
        ).status_code == 201
    viewer = app.test_client()
    viewer.post("/api/v1/login", json={"username": "watcher", "password": "a long password"})
    assert viewer.get("/api/v1/users").status_code == 403
    assert viewer.get("/api/v1/licence").status_code == 403
    assert viewer.get("/api/v1/cameras/door/timeline").status_code == 403   # not granted
    assert viewer.get("/api/v1/recordings/1.mp4").status_code == 403        # guessing ids
    assert viewer.get("/api/v1/cameras/garden/timeline").status_code == 200
    operator = app.test_client()
    operator.post("/api/v1/login", json={"username": "guard", "password": "a long password"})
    assert operator.get("/api/v1/cameras/door/timeline").status_code == 200
    assert operator.get("/api/v1/users").status_code == 403


@pytest.mark.parametrize("host, status", [("evil.example", 421), ("127.0.0.1:8080", 200),
                                          ("[::1]:8080", 200), ("localhost", 200)])
def test_host_header_check_against_dns_rebinding(app, host, status):
    client = app.test_client()
    assert client.get("/api/v1/setup", headers={"Host": host}).status_code == status


def test_hostile_bodies(app):
    client = app.test_client()
    assert client.post("/api/v1/setup", data=b"{" * 2_000_000,
                       content_type="application/json").status_code == 413
    for body in ([], "x", {"username": ["owner"], "password": "x" * 20},
                 {"username": {"$ne": 1}, "password": "correct horse battery"},
                 {"username": "own$(touch /tmp/canary)", "password": "correct horse battery"},
                 {"username": "<script>alert(1)</script>", "password": "correct horse battery"}):
        assert client.post("/api/v1/setup", json=body).status_code == 400, body
    assert app.config["VIGIL_ACCOUNTS"].setup_needed()
    resp = client.get("/api/v1/setup")
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"


def test_licence_install_through_the_api(tmp_path):
    from pathlib import Path

    from appliance.licensing.keys import load_private, trusted_keys
    from appliance.licensing.licence import Licence, sign
    from appliance.licensing.store import LicenceStore

    root = Path(__file__).resolve().parents[3]
    store = LicenceStore(tmp_path / "licence.txt", "SIM00000001", trusted_keys(["dev"]), 4)
    accounts = AccountStore(tmp_path / "accounts.sqlite3")
    app = create_app(tmp_path / "data", accounts, licence=lambda: store)
    client = app.test_client()
    csrf = setup_admin(client)
    key = load_private(root / "keys/dev/licence-vendor-DEV-ONLY.pem")
    good = sign(Licence("lic-api-1", "SIM00000001", 16, "standard", "2026-01-01", None), key)
    other = sign(Licence("lic-api-2", "SIM00000002", 32, "standard", "2026-01-01", None), key)
    assert client.get("/api/v1/licence").json["channels"] == 4
    resp = client.post("/api/v1/licence", json={"licence": good.decode()},
                       headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 201 and resp.json["channels"] == 16
    resp = client.post("/api/v1/licence", json={"licence": other.decode()},
                       headers={"X-CSRF-Token": csrf})
    assert resp.status_code == 400 and "not for this box" in resp.json["error"]
    assert client.get("/api/v1/licence").json["channels"] == 16  # the good one stays
    assert "licence_installed" in [e["what"] for e in accounts.audit_log()]
    accounts.close()


def test_guessing_the_old_password_through_a_session_is_throttled_like_a_login(app):
    client = app.test_client()
    client.environ_base["HTTP_X_CSRF_TOKEN"] = setup_admin(client)
    codes = [client.post("/api/v1/password", json={"old": f"wrong guess {i:03d}",
                                                   "new": "another long password"}).status_code
             for i in range(7)]
    assert codes[:5] == [400] * 5 and codes[5:] == [429, 429]
    # locked: even the right old password waits
    assert client.post("/api/v1/password", json={"old": ADMIN["password"],
                                                 "new": "another long password"}).status_code == 429
