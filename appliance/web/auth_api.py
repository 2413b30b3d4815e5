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
    if g.get("session") is not None:  # a new session id at every login (no fixation)
        accounts().logout(g.session)
    token, session = accounts().login(username, password, client_address())
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
    cameras = data.get("cameras", [])
    if not isinstance(cameras, list) or not all(isinstance(c, str) for c in cameras):
        raise InvalidConfig("`cameras` must be a list of camera names")
    user = accounts().add_user(data["username"], data["password"], data["role"], tuple(cameras))
    accounts().audit(g.session.user.username, "user_added", f"{user.username} ({user.role})",
                     client_address())
    return jsonify(username=user.username, role=user.role, cameras=list(user.cameras)), 201


@auth.get("/audit")
@require_role("admin")
def audit_log():
    return jsonify(entries=accounts().audit_log())
