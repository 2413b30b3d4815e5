"""Managing users on the real app: role and camera changes, password resets and deletion
by admins only, never the last admin, sessions ended at once, every change audited, and
hostile input refused with nothing changed (security.md A1)."""

from __future__ import annotations

import pytest

from tests.integration.web.test_storage_api import PASSWORD, running_sites


@pytest.fixture
def s(tmp_path):
    with running_sites(tmp_path) as start:
        yield start(hwd=False)


def users(site) -> list[dict]:
    status, answer = site.admin.json("GET", "/api/v1/users")
    assert status == 200
    return answer["users"]


def test_only_admins_manage_users(s):
    operator = s.user("guard", "operator")
    viewer = s.user("watcher", "viewer", ["door"])
    before = users(s)
    for client in (operator, viewer):
        for method, path, body in (("PATCH", "/api/v1/users/watcher", {"role": "admin"}),
                                   ("DELETE", "/api/v1/users/watcher", {}),
                                   ("POST", "/api/v1/users/watcher/password",
                                    {"password": "another long one"}),
                                   ("PATCH", "/api/v1/users/guard", {"role": "admin"})):
            assert client.json(method, path, body)[0] == 403, (method, path)
    assert users(s) == before and not s.audit("user_changed")


def test_role_and_camera_changes_apply_to_open_sessions_and_are_audited(s):
    viewer = s.user("watcher", "viewer", ["door"])
    assert viewer.json("GET", "/api/v1/alerts")[0] == 403
    status, answer = s.admin.json("PATCH", "/api/v1/users/watcher",
                                  {"role": "operator", "cameras": ["door", "yard", "door"]})
    assert status == 200 and answer == {"username": "watcher", "role": "operator",
                                        "cameras": ["door", "yard"]}
    assert viewer.json("GET", "/api/v1/alerts")[0] == 200  # the same session, new role
    assert viewer.json("GET", "/api/v1/me")[1]["cameras"] == ["door", "yard"]
    [entry] = s.audit("user_changed")
    assert entry["who"] == "owner"
    assert entry["detail"] == "watcher: role viewer -> operator, cameras door -> door,yard"
    status, answer = s.admin.json("PATCH", "/api/v1/users/watcher", {"cameras": ["*"]})
    assert status == 200 and answer["role"] == "operator" and answer["cameras"] == ["*"]


def test_the_last_admin_stays(s):
    status, answer = s.admin.json("PATCH", "/api/v1/users/owner", {"role": "viewer"})
    assert status == 409 and "last admin" in answer["error"]
    status, answer = s.admin.json("DELETE", "/api/v1/users/owner", {})
    assert status == 409 and "last admin" in answer["error"]
    assert [(u["username"], u["role"]) for u in users(s)] == [("owner", "admin")]
    second = s.user("deputy", "admin")
    # With two admins one may go, even the one asking (their own session ends).
    status, _ = second.json("DELETE", "/api/v1/users/owner", {})
    assert status == 200
    assert s.admin.json("GET", "/api/v1/me")[0] == 401
    status, answer = second.json("PATCH", "/api/v1/users/deputy", {"role": "operator"})
    assert status == 409 and "last admin" in answer["error"]
    assert [(u["username"], u["role"]) for u in second.json("GET", "/api/v1/users")[1]["users"]] \
        == [("deputy", "admin")]


def test_deleting_a_user_ends_their_sessions(s):
    viewer = s.user("watcher", "viewer", ["door"])
    laptop = type(viewer)(s.base).login("watcher", PASSWORD)
    assert s.accounts.sessions_of("watcher") == 2
    status, answer = s.admin.json("DELETE", "/api/v1/users/watcher", {})
    assert status == 200 and answer["deleted"] == "watcher"
    for client in (viewer, laptop):
        assert client.json("GET", "/api/v1/me")[0] == 401
    assert s.accounts.sessions_of("watcher") == 0
    assert s.admin.json("DELETE", "/api/v1/users/watcher", {})[0] == 404
    [entry] = s.audit("user_deleted")
    assert entry["detail"] == "watcher (viewer)"


def test_a_password_reset_ends_sessions_and_only_the_new_password_works(s):
    viewer = s.user("watcher", "viewer", ["door"])
    status, answer = s.admin.json("POST", "/api/v1/users/watcher/password",
                                  {"password": "a brand new secret"})
    assert status == 200, answer
    assert viewer.json("GET", "/api/v1/me")[0] == 401
    fresh = type(viewer)(s.base)
    assert fresh.json("POST", "/api/v1/login", {"username": "watcher",
                                                "password": PASSWORD})[0] == 401
    assert fresh.json("POST", "/api/v1/login", {"username": "watcher",
                                                "password": "a brand new secret"})[0] == 200
    [entry] = s.audit("password_reset")
    assert entry["who"] == "owner" and entry["detail"] == "watcher"
    assert s.admin.json("GET", "/api/v1/me")[0] == 200  # the admin's own session stays


@pytest.mark.parametrize("method, path, body, status", [
    ("PATCH", "/api/v1/users/%3Cscript%3Ealert(1)%3C%2Fscript%3E", {"role": "admin"}, 404),
    ("PATCH", "/api/v1/users/..%2F..%2Fetc", {"role": "admin"}, 404),
    ("PATCH", "/api/v1/users/" + "a" * 10_000, {"role": "admin"}, 404),
    ("DELETE", "/api/v1/users/nobody", {}, 404),
    ("POST", "/api/v1/users/nobody/password", {"password": "a long password"}, 404),
    ("PATCH", "/api/v1/users/watcher", {"role": "root"}, 400),
    ("PATCH", "/api/v1/users/watcher", {"role": 5}, 400),
    ("PATCH", "/api/v1/users/watcher", {"role": ["admin"]}, 400),
    ("PATCH", "/api/v1/users/watcher", {"cameras": "door"}, 400),
    ("PATCH", "/api/v1/users/watcher", {"cameras": [1]}, 400),
    ("PATCH", "/api/v1/users/watcher", {"cameras": ["../etc"]}, 400),
    ("PATCH", "/api/v1/users/watcher", {"cameras": ["<script>"]}, 400),
    ("PATCH", "/api/v1/users/watcher", {"cameras": [f"c{i}" for i in range(65)]}, 400),
    ("PATCH", "/api/v1/users/watcher", {"cameras": ["x" * 10_000]}, 400),
    ("PATCH", "/api/v1/users/watcher", {"role": "admin", "password": "x"}, 400),
    ("PATCH", "/api/v1/users/watcher", {}, 400),
    ("PATCH", "/api/v1/users/watcher", [], 400),
    ("POST", "/api/v1/users/watcher/password", {"password": "short"}, 400),
    ("POST", "/api/v1/users/watcher/password", {"password": "watcher-is-me-1"}, 400),
    ("POST", "/api/v1/users/watcher/password", {"password": 1234567890123}, 400),
    ("POST", "/api/v1/users/watcher/password", {"password": "x" * 10_000}, 400),
    ("POST", "/api/v1/users/watcher/password", {"password": "a long password", "role": "admin"},
     400),
])
def test_hostile_input_is_refused_and_changes_nothing(s, method, path, body, status):
    viewer = s.user("watcher", "viewer", ["door"])
    before = users(s)
    got, answer = s.admin.json(method, path, body)
    assert got == status, (got, answer)
    assert answer.get("error")
    assert users(s) == before
    assert viewer.json("GET", "/api/v1/me")[0] == 200  # their session was not ended
    assert not (s.audit("user_changed") or s.audit("user_deleted") or s.audit("password_reset"))
