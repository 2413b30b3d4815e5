"""Prometheus metrics: `GET /metrics` for scrapers, and the admin's view of who may scrape.

`/metrics` is outside the session login (Prometheus has none) and outside /api/v1 (where
Prometheus looks by default): the blueprint adds that one rule to the app when it is
registered. It is on security.PUBLIC's allowlist, so the Host check, the body limit and
the headers still apply, and it lets a request through only with the box's scrape token
(`Authorization: Bearer <token>`) or from an address in the owner's allowed networks.
Anything else gets the same 401, whether a token exists, was wrong or was missing.

Under /api/v1 (admin): `GET/POST /metrics/token` shows the token (made at first use) or
replaces it, and `GET/PUT /metrics/settings` the allowed networks. What is exported:
appliance/metrics/, docs/design/metrics.md.
"""

from __future__ import annotations

import threading

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from appliance.core.errors import DataLoss, InvalidConfig
from appliance.metrics.access import (ScrapeToken, address_allowed, load_networks,
                                      save_networks, settings_path, token_path)
from appliance.metrics.collector import build_registry, exposition
from appliance.metrics.sources import MetricSources
from appliance.web.security import accounts, client_address, require_role
from appliance.web.services import paths, required

metrics = Blueprint("metrics", __name__)

SCRAPE_ENDPOINT = "metrics.scrape"
EXTENSION = "vigil_metrics"
SCRAPE_PATH = "/metrics"
_registry_lock = threading.Lock()


@metrics.record_once
def _add_scrape_rule(state) -> None:
    state.app.add_url_rule(SCRAPE_PATH, SCRAPE_ENDPOINT, scrape, methods=["GET"])


def _registry(app: Flask):
    """The app's metrics registry, made at the first scrape from the app's config."""
    with _registry_lock:
        registry = app.extensions.get(EXTENSION)
        if registry is None:
            web = paths()
            registry = build_registry(MetricSources(
                data_dir=app.config["VIGIL_DATA_DIR"], config=web.config,
                registry=web.registry, hwd_state=web.hwd_state,
                licence=app.config.get("VIGIL_LICENCE")))
            app.extensions[EXTENSION] = registry
        return registry


def _may_scrape() -> bool:
    config = paths().config
    if config is None:           # nowhere to keep a token or settings: nobody may scrape
        return False
    if ScrapeToken(token_path(config)).matches(request.headers.get("Authorization")):
        return True
    try:
        networks = load_networks(settings_path(config))
    except DataLoss:
        return False
    return bool(networks) and address_allowed(client_address(), networks)


def scrape():
    """The metrics in the format the scraper asks for (Accept), or one 401 for everyone
    else (WWW-Authenticate says a bearer token is what counts)."""
    if not _may_scrape():
        resp = jsonify(error="a scrape token is needed (Authorization: Bearer <token>)")
        resp.status_code = 401
        resp.headers["WWW-Authenticate"] = 'Bearer realm="vigil metrics"'
        return resp
    body, content_type = exposition(_registry(current_app), request.headers.get("Accept"))
    return Response(body, content_type=content_type, headers={"Cache-Control": "no-store"})


# --- the admin's side -------------------------------------------------------------------------

def _token() -> ScrapeToken:
    return ScrapeToken(token_path(required("config")))


def _empty_body() -> None:
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or data:
        raise InvalidConfig("the body must be an empty JSON object ({})")


def _token_json(data: dict) -> dict:
    return {"token": data["token"], "created": data.get("created"), "path": SCRAPE_PATH,
            "header": f"Authorization: Bearer {data['token']}"}


def _audit(what: str, detail: str) -> None:
    accounts().audit(g.session.user.username, what, detail, client_address())


@metrics.get("/metrics/token")
@require_role("admin")
def show_token():
    """The scrape token, made now if this is its first use."""
    return jsonify(_token_json(_token().ensure()))


@metrics.post("/metrics/token")
@require_role("admin")
def regenerate_token():
    """Body: {}. A new token; scrapers with the old one get 401 from now on."""
    _empty_body()
    data = _token().regenerate()
    _audit("metrics_token_regenerated", "scrapers need the new token")
    return jsonify(_token_json(data))


def _settings_json() -> dict:
    networks = load_networks(settings_path(required("config")))
    return {"allowed_networks": [str(n) for n in networks],
            "applies": "at the next scrape; an empty list means the token only"}


@metrics.get("/metrics/settings")
@require_role("admin")
def show_settings():
    return jsonify(_settings_json())


@metrics.put("/metrics/settings")
@require_role("admin")
def change_settings():
    """Body: {"allowed_networks": ["192.168.1.0/24", ...]}: addresses there may scrape
    without the token ([] = token only)."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or set(data) != {"allowed_networks"}:
        raise InvalidConfig('give {"allowed_networks": [network, ...]}, nothing else')
    path = settings_path(required("config"))
    try:
        before = ", ".join(str(n) for n in load_networks(path)) or "none"
    except DataLoss:
        before = "a damaged file"             # replaced by this change
    after = [str(n) for n in save_networks(path, data["allowed_networks"])]
    _audit("metrics_settings_changed",
           f"allowed networks: {before} -> {', '.join(after) or 'none'}")
    return jsonify(_settings_json())
