"""First-boot setup, login, logout, the current user, users and password changes."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from appliance.core.errors import InvalidConfig
from appliance.web.security import (COOKIE, accounts, client_address, require_role,
                                    set_session_cookie)

auth = Blueprint("auth", __name__)


def body(*fields: str) -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidConfig("the body must be a JSON object")
    for name in fields:
        if not isinstance(data.get(name), str):
            raise InvalidConfig(f"`{name}` must be text")
    return data


@auth.get("/setup")
def setup_status():
    return jsonify(needed=accounts().setup_needed())


@auth.post("/setup")
def setup():
    """The first admin account: possible exactly once, then this answers 409."""
    data = body("username", "password")
    user = accounts().create_first_admin(data["username"], data["password"])
    accounts().audit(user.username, "setup", "first admin created", client_address())
    return login_response(data["username"], data["password"], 201)


@auth.post("/login")
def login():
    data = body("username", "password")
    return login_response(data["username"], data["password"], 200)


def login_response(username: str, password: str, status: int):
    token, session = accounts().login(username, password, client_address())
    if g.get("session") is not None:  # a new session id at every login (no fixation);
        accounts().logout(g.session)  # a refused login leaves the current one alone
    resp = jsonify(user=session.user.username, role=session.user.role, csrf=session.csrf)
    set_session_cookie(resp, token)
    return resp, status


@auth.post("/logout")
def logout():
    accounts().logout(g.session)
    accounts().audit(g.session.user.username, "logout", "", client_address())
    resp = jsonify(ok=True)
    resp.delete_cookie(COOKIE, path="/")
    return resp


@auth.get("/me")
def me():
    user = g.session.user
    return jsonify(user=user.username, role=user.role, cameras=list(user.cameras),
                   csrf=g.session.csrf)


@auth.post("/password")
def change_password():
    data = body("old", "new")
    # throttled like a login: a stolen session cannot guess the old password
    accounts().confirm_password(g.session.user.username, data["old"], client_address())
    accounts().change_password(g.session.user.username, data["old"], data["new"])
    accounts().audit(g.session.user.username, "password_changed", "", client_address())
    resp = jsonify(ok=True, note="every session of this user ended; log in again")
    resp.delete_cookie(COOKIE, path="/")
    return resp


@auth.get("/users")
@require_role("admin")
def list_users():
    return jsonify(users=[{"username": u.username, "role": u.role, "cameras": list(u.cameras)}
                          for u in accounts().users()])


@auth.post("/users")
@require_role("admin")
def add_user():
    data = body("username", "password", "role")
    cameras = _camera_grants(data.get("cameras", []))   # the same check as PATCH
    user = accounts().add_user(data["username"], data["password"], data["role"], cameras)
    accounts().audit(g.session.user.username, "user_added", f"{user.username} ({user.role})",
                     client_address())
    return jsonify(username=user.username, role=user.role, cameras=list(user.cameras)), 201


@auth.get("/audit")
@require_role("admin")
def audit_log():
    return jsonify(entries=accounts().audit_log())


# --- managing other users (admin): role, camera grants, password reset, deletion ----------
MAX_GRANTS = 64


def _known_user(name: str):
    from flask import abort

    from appliance.web.accounts import USERNAME

    user = accounts().get_user(name) if USERNAME.match(name or "") else None
    if user is None:
        abort(404)
    return user


def _camera_grants(value) -> tuple[str, ...]:
    from appliance.config.recorder import CAMERA_NAME

    if not isinstance(value, list) or len(value) > MAX_GRANTS or not all(
            isinstance(c, str) and (c == "*" or CAMERA_NAME.match(c)) for c in value):
        raise InvalidConfig(f"`cameras` must be a list of at most {MAX_GRANTS} camera names "
                            "(or \"*\" for every camera)")
    return tuple(dict.fromkeys(value))


@auth.patch("/users/<name>")
@require_role("admin")
def update_user(name: str):
    """Body: {"role": ..., "cameras": [...]}, either or both. The last admin stays admin."""
    _known_user(name)
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not data or set(data) - {"role", "cameras"}:
        raise InvalidConfig("give `role` and/or `cameras`, nothing else")
    role = data.get("role")
    if role is not None and not isinstance(role, str):
        raise InvalidConfig("`role` must be text: admin, operator or viewer")
    cameras = _camera_grants(data["cameras"]) if "cameras" in data else None
    before, after = accounts().update_user(name, role, cameras)
    accounts().audit(g.session.user.username, "user_changed",
                     f"{name}: role {before.role} -> {after.role}, cameras "
                     f"{','.join(before.cameras) or '-'} -> {','.join(after.cameras) or '-'}",
                     client_address())
    return jsonify(username=after.username, role=after.role, cameras=list(after.cameras))


@auth.delete("/users/<name>")
@require_role("admin")
def delete_user(name: str):
    """Never the last admin; every session of the user ends with it."""
    _known_user(name)
    user = accounts().delete_user(name)
    accounts().audit(g.session.user.username, "user_deleted", f"{user.username} ({user.role})",
                     client_address())
    resp = jsonify(ok=True, deleted=user.username)
    if user.username == g.session.user.username:
        resp.delete_cookie(COOKIE, path="/")
    return resp


@auth.post("/users/<name>/password")
@require_role("admin")
def reset_password(name: str):
    """Body: {"password": "..."}: an admin sets another user's password; their sessions end."""
    _known_user(name)
    data = body("password")
    if set(data) - {"password"}:
        raise InvalidConfig("give only `password`")
    accounts().reset_password(name, data["password"])
    accounts().audit(g.session.user.username, "password_reset", name, client_address())
    resp = jsonify(ok=True, note=f"every session of {name} ended")
    if name == g.session.user.username:
        resp.delete_cookie(COOKIE, path="/")
    return resp
