"""What every request passes before it reaches a route, and the headers every answer gets.

* Host check: only IP literals, `localhost` and the box's configured names are accepted
  (a DNS-rebinding page's Host is refused).
* Authentication: every endpoint needs a session except a short explicit allowlist
  (PUBLIC); before the first-boot setup created the admin, everything else answers
  503 "setup required" (there is no default account to log in with).
* CSRF: a state-changing request must be JSON (a cross-origin form or `text/plain`
  fetch cannot send that without a preflight) and, with a session, carry the session's
  token in `X-CSRF-Token`.
* Roles: `require_role` on routes; viewers are further limited to their cameras.
"""

from __future__ import annotations

import ipaddress
from functools import wraps
from typing import Callable

from flask import Flask, abort, current_app, g, jsonify, request

# metrics.scrape (/metrics) checks its own scrape token or allowed network (Prometheus
# has no session): web/metrics_api.py.
PUBLIC = frozenset({"auth.setup_status", "auth.setup", "auth.login", "static",
                    "metrics.scrape"})
PUBLIC_PREFIXES = ("pages.",)  # the HTML shells: they hold no data, the API does
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The one request body that is neither JSON nor small: an update bundle (admin only, CSRF
# token still required), streamed to the data disk by update_api. Endpoint -> byte limit.
BINARY_UPLOADS = {"update.upload": 1536 * 1024 * 1024}
COOKIE = "vigil_session"
RANK = {"viewer": 0, "operator": 1, "admin": 2}
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; worker-src 'self' blob:; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    name = host.rsplit(":", 1)[0] if not host.startswith("[") else host[1:host.find("]")]
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return name.lower() in allowed or name.lower() == "localhost"


def install(app: Flask) -> None:
    if not app.config.get("MAX_CONTENT_LENGTH"):
        app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024

    @app.before_request
    def guard():
        allowed = frozenset(h.lower() for h in app.config.get("VIGIL_ALLOWED_HOSTS", ()))
        if not host_allowed(request.host or "", allowed):
            return jsonify(error="unknown host name"), 421
        binary_limit = BINARY_UPLOADS.get(request.endpoint or "")
        limit = binary_limit or app.config["MAX_CONTENT_LENGTH"]
        if request.content_length is not None and request.content_length > limit:
            return jsonify(error="the request is too large"), 413
        if binary_limit:
            request.max_content_length = binary_limit
        accounts = app.config["VIGIL_ACCOUNTS"]
        endpoint = request.endpoint or ""
        public = endpoint in PUBLIC or endpoint.startswith(PUBLIC_PREFIXES)
        if request.method in STATE_CHANGING and not request.is_json and not binary_limit:
            return jsonify(error="state-changing requests must be JSON"), 415
        g.session = accounts.session(request.cookies.get(COOKIE))
        if public:
            return None
        if accounts.setup_needed():
            return jsonify(error="setup required", setup="/api/v1/setup"), 503
        if g.session is None:
            return jsonify(error="login required"), 401
        if request.method in STATE_CHANGING and \
                request.headers.get("X-CSRF-Token") != g.session.csrf:
            return jsonify(error="missing or wrong CSRF token"), 403
        return None

    @app.after_request
    def headers(resp):
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
        if resp.mimetype == "application/json":
            resp.headers["Cache-Control"] = "no-store"
        return resp


def require_role(role: str) -> Callable:
    def wrap(view):
        @wraps(view)
        def inner(*args, **kwargs):
            session = g.get("session")
            if session is None or RANK[session.user.role] < RANK[role]:
                abort(403)
            return view(*args, **kwargs)
        return inner
    return wrap


def check_camera(camera: str) -> None:
    """Viewers see only the cameras granted to them (403 for the others)."""
    session = g.get("session")
    if session is None or not session.user.can_view(camera):
        abort(403)


def set_session_cookie(resp, token: str) -> None:
    resp.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=request.is_secure,
                    path="/")


def client_address() -> str:
    return request.remote_addr or ""


def accounts():
    return current_app.config["VIGIL_ACCOUNTS"]
