"""The Integrations area (admin; the page is templates/integrations.html): the MQTT broker
the box sends its events to, a connection test to a broker, and the switch of the RTSP
restream with its URLs. The metrics' token and allowed networks are metrics_api's.

The settings are read here, as the daemons read them (mqtt.json and restream.json beside
the appliance TOML, the broker's login in /persist/secrets/mqtt), and changed through
vigil-hwd (appliance/fleet_control.py): this process may not write the login's directory
nor start a unit. Each change is checked here first (so that a CA file is read as the
unprivileged user that will read it), then again by vigil-hwd, and audited without the
password, which no answer ever carries. vigil-mqtt follows its files within seconds.

The restream's URLs carry the restream user and the address this page was opened at
(the LAN address the owner reaches the box at, which a VMS on that LAN reaches too),
never its password: an admin asks for it separately (GET /restream/login, audited), and
a technician's console shows it (`nvr restream urls --show-password`).
"""

from __future__ import annotations

import dataclasses
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from appliance.cameras.credentials import Credentials
from appliance.cameras.manage import (check_credentials, load_camera_settings,
                                      open_camera_registry)
from appliance.cameras.onvif.policy import DEFAULT_OWN_PORTS, AddressPolicy
from appliance.core.errors import DataLoss, FailedPrecondition, InvalidConfig, Unavailable
from appliance.mqtt import broker_ca
from appliance.mqtt import settings as mqtt_settings
from appliance.mqtt.probe import probe_broker, tls_context
from appliance.restream.login import RESTREAM_USER, RestreamLogin
from appliance.restream.plan import DEFAULT_PORT, plan_from_registry, url_table
from appliance.restream.settings import load_enabled
from appliance.restream.settings import settings_path as restream_settings_path
from appliance.web.security import accounts, client_address, require_role
from appliance.web.services import hwd, paths, required

integrations = Blueprint("integrations", __name__)

SETTINGS_FIELDS = frozenset(f.name for f in dataclasses.fields(mqtt_settings.MqttSettings))
# What a connection test tries: the rest (topics, discovery, queue) plays no part in it.
BROKER_FIELDS = frozenset({"host", "port", "tls", "ca_file"})
LOGIN_FIELDS = frozenset({"username", "password", "password_action"})
CA_FIELD = "ca_certificate"      # the broker's CA as PEM text (broker_ca.py)
PASSWORD_AT_CONSOLE = ("shown to an admin on request (GET /api/v1/restream/login, audited) and on "
                       "a technician's console: nvr restream urls --show-password "
                       "(anyone with it can watch every camera)")


def _audit(what: str, detail: str) -> None:
    accounts().audit(g.session.user.username, what, detail, client_address())


def _object_body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidConfig("the body must be a JSON object")
    return data


# --- MQTT ---------------------------------------------------------------------------------------

def _mqtt_secrets() -> Path:
    """The broker's login directory, beside the cameras' (/persist/secrets/mqtt)."""
    return required("secrets").parent / "mqtt"


def _mqtt_stored() -> tuple[mqtt_settings.MqttSettings, Credentials | None, str | None]:
    """The settings and login in force, and what is wrong with their files (the
    defaults are shown for a damaged settings file: saving replaces it)."""
    problems = []
    try:
        settings = mqtt_settings.load_settings(mqtt_settings.settings_path(required("config")))
    except DataLoss as exc:
        settings, problems = mqtt_settings.MqttSettings(), [str(exc)]
    try:
        login = mqtt_settings.load_credentials(_mqtt_secrets())
    except DataLoss as exc:
        login = None
        problems.append(f"the broker's login: {exc}")
    return settings, login, "; ".join(problems) or None


def _ca_view(settings: mqtt_settings.MqttSettings) -> dict[str, Any]:
    """Which CA the broker's certificate is checked against, for the page."""
    if not settings.tls:
        return {"source": "none"}
    if not settings.ca_file:
        return {"source": "system"}
    uploaded = broker_ca.is_uploaded(required("config").parent, settings.ca_file)
    described = broker_ca.describe_file(settings.ca_file)
    return {"source": "uploaded" if uploaded else "file", "readable": described is not None,
            **(described or {})}


def _mqtt_view() -> dict[str, Any]:
    settings, login, problem = _mqtt_stored()
    return {"settings": dataclasses.asdict(settings), "ca": _ca_view(settings),
            "port_in_force": settings.effective_port,
            "topic_prefix_in_force": settings.prefix(mqtt_settings.this_hostname()),
            "username": login.username if login else None, "password_set": login is not None,
            "problem": problem,
            "applies": "within seconds: vigil-mqtt follows its settings and login"}


def _mqtt_request(fields: frozenset[str]) -> tuple[dict[str, Any], dict[str, Any],
                                                  broker_ca.BrokerCa | None]:
    """(settings changes, login change, the broker CA given as PEM) from a PUT or test
    body; unknown fields refused."""
    data = _object_body()
    known = fields | LOGIN_FIELDS | {CA_FIELD}
    unknown = sorted(str(k)[:40] for k in set(data) - known)
    if unknown:
        raise InvalidConfig(f"unknown field(s) {', '.join(unknown)}; known: "
                            f"{', '.join(sorted(known))}")
    changes = {k: v for k, v in data.items() if k in fields}
    ca = None
    if CA_FIELD in data:
        if "ca_file" in changes:
            raise InvalidConfig("give ca_certificate (the PEM text) or ca_file (a path on the "
                                "box), not both")
        ca = broker_ca.check_ca_pem(data[CA_FIELD])
    return changes, _login_request(data), ca


def _login_request(data: dict[str, Any]) -> dict[str, Any]:
    """The login change of a PUT or test body."""
    action = data.get("password_action", "unchanged")
    if action not in ("unchanged", "set", "clear"):
        raise InvalidConfig('password_action: "unchanged" (keep the login), "set" (with '
                            'username and password) or "clear" (no login)')
    if action == "set":
        if check_credentials(data.get("username"), data.get("password")) is None:
            raise InvalidConfig('password_action "set": give the username and the password')
        return {"action": "set", "username": data["username"], "password": data["password"]}
    if data.get("username") not in (None, "") or data.get("password") not in (None, ""):
        raise InvalidConfig('username and password are given with password_action "set" '
                            "(both: a new login replaces the old one whole)")
    return {"action": action}


def _merged(changes: dict[str, Any],
            ca: broker_ca.BrokerCa | None = None) -> mqtt_settings.MqttSettings:
    """The settings as they would be, checked; a CA file given now must be readable here
    (an uploaded CA is named where vigil-hwd will keep it)."""
    current, _, _ = _mqtt_stored()
    if ca is not None:
        changes = {**changes, "ca_file": str(required("config").parent / ca.file_name)}
    new = mqtt_settings.parse_settings({**dataclasses.asdict(current), **changes})
    if changes.get("ca_file") and new.tls and ca is None:
        tls_context(new.ca_file)
    return new


@contextmanager
def _tested_with(settings: mqtt_settings.MqttSettings, ca: broker_ca.BrokerCa | None):
    """The settings to test: with a CA given as PEM, one in a file of this request."""
    if ca is None:
        yield settings
        return
    with tempfile.NamedTemporaryFile(prefix="mqtt-ca-test-", suffix=".pem") as handle:
        handle.write(ca.pem)
        handle.flush()
        yield dataclasses.replace(settings, ca_file=handle.name)


def _change_text(old: dict[str, Any], new: dict[str, Any], login: dict[str, Any],
                 username: str | None) -> str:
    parts = [f"{k} {old[k]!r} -> {new[k]!r}" for k in new if new[k] != old[k]]
    if login["action"] == "set":
        parts.append(f"login set (user {username})")
    elif login["action"] == "clear":
        parts.append("login cleared")
    return "; ".join(parts) or "unchanged"


@integrations.get("/mqtt/settings")
@require_role("admin")
def show_mqtt():
    """The broker settings, and the login's user name (never its password)."""
    return jsonify(_mqtt_view())


@integrations.put("/mqtt/settings")
@require_role("admin")
def change_mqtt():
    """Any settings field (those left out keep their value), and the login:
    "password_action": "set" with "username" and "password", "clear", or "unchanged"."""
    changes, login, ca = _mqtt_request(SETTINGS_FIELDS)
    _merged(changes, ca)
    extra = {"ca_certificate": ca.pem.decode()} if ca is not None else {}
    answer = hwd().call("mqtt.set", changes=changes, login=login, **extra)
    _audit("mqtt_settings_changed", _change_text(answer["previous"], answer["settings"],
                                                 login, answer["username"]))
    return jsonify(_mqtt_view())


def _test_policy() -> AddressPolicy:
    """The camera address guard over the box's own networks and the configured camera
    networks: never link-local, metadata or the box's own services (this request's port
    and the restream's included)."""
    own = set(DEFAULT_OWN_PORTS) | {DEFAULT_PORT}
    for text in (request.environ.get("SERVER_PORT", ""), request.host.rpartition(":")[2]):
        if text.isdigit() and 0 < int(text) < 65536:
            own.add(int(text))
    lans = AddressPolicy.for_this_host(own_ports=own)
    cameras = load_camera_settings(paths().config).networks()
    return AddressPolicy([*lans.allowed, *cameras], own_addresses=lans.own_addresses,
                         own_ports=own)


def _test_login(login: dict[str, Any]) -> Credentials | None:
    """The login to test with: the one typed, the stored one, or none."""
    if login["action"] == "set":
        return Credentials(login["username"], login["password"])
    return _mqtt_stored()[1] if login["action"] == "unchanged" else None


@integrations.post("/mqtt/test")
@require_role("admin")
def test_mqtt():
    """The form's broker values over the stored ones; one connection, CONNECT, DISCONNECT."""
    changes, login, ca = _mqtt_request(BROKER_FIELDS)
    settings = _merged(changes, ca)
    if not settings.host:
        raise InvalidConfig("host: give the broker's host name or address to test")
    credentials = _test_login(login)
    with _tested_with(settings, ca) as tested:
        result = probe_broker(tested, credentials, _test_policy())
    return jsonify({**result.to_json(), "broker": f"{settings.host}:{settings.effective_port}",
                    "tls": settings.tls,
                    "username": credentials.username if credentials else None})


# --- the RTSP restream ---------------------------------------------------------------------------

def _url_host() -> str:
    """The host name or address this page was opened at, without the port."""
    host = request.host
    if host.startswith("["):
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _restream_urls(problems: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """(user, per camera its URLs) with the restream login's user name, and no password."""
    try:
        login = RestreamLogin(required("secrets").parent / "restream" / "login.json").read()
    except DataLoss as exc:
        login = None
        problems.append(str(exc))
    # Before the relay's first start there is no login yet; it will be made for this user.
    user = login.username if login else RESTREAM_USER
    licence = current_app.config.get("VIGIL_LICENCE")
    registry = open_camera_registry(required("registry"), required("secrets"), paths().config,
                                    channel_limit=(lambda: licence().channel_limit())
                                    if licence is not None else None)
    mounts, skipped = plan_from_registry(registry)
    return user, url_table(mounts, skipped, _url_host(), DEFAULT_PORT,
                           Credentials(user, ""), show_password=False)


def _restream_view() -> dict[str, Any]:
    problems: list[str] = []
    try:
        enabled = load_enabled(restream_settings_path(required("config")))
    except DataLoss as exc:
        enabled = False
        problems.append(f"{exc}; the restream stays off until it is switched again")
    view = {"enabled": enabled, "port": DEFAULT_PORT, "user": None, "cameras": [],
            "password": PASSWORD_AT_CONSOLE, "service": None}
    if enabled:
        view["user"], view["cameras"] = _restream_urls(problems)
    try:
        status = hwd(timeout=5.0).call("restream.status")
    except Unavailable as exc:
        problems.append(f"the restream's state is unknown: {exc}")
    else:
        view["service"] = status["service"]
        if status["problem"]:
            problems.append(status["problem"])
    view["problem"] = "; ".join(problems) or None
    return view


@integrations.get("/restream")
@require_role("admin")
def show_restream():
    """On or off; when on, each camera's URLs for a VMS."""
    return jsonify(_restream_view())


@integrations.get("/restream/login")
@require_role("admin")
def show_restream_login():
    """The restream's user name and password, for the owner to type into a VMS. Admins
    only, like the scrape token; every showing goes to the audit log. 409 before the
    restream's first start made the login."""
    login = RestreamLogin(required("secrets").parent / "restream" / "login.json").read()
    if login is None:
        raise FailedPrecondition("the restream login is made at its first start: switch the "
                                 "restream on first")
    _audit("restream_login_shown", f"user {login.username}")
    return jsonify({"user": login.username, "password": login.password})


@integrations.put("/restream")
@require_role("admin")
def switch_restream():
    """Body: {"enabled": true|false}. vigil-hwd saves the switch and starts or stops the
    restream (port 8554 on the LAN)."""
    data = _object_body()
    if set(data) != {"enabled"} or not isinstance(data["enabled"], bool):
        raise InvalidConfig('give {"enabled": true} or {"enabled": false}, nothing else')
    answer = hwd().call("restream.set", enabled=data["enabled"])
    _audit("restream_switched", f"{'on' if answer['previous'] else 'off'} -> "
                                f"{'on' if answer['enabled'] else 'off'}")
    return jsonify({**_restream_view(), "problems": answer["problems"]})
