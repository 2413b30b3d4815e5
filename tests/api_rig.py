"""The whole web API in a directory, for the tests that go through every documented
operation (tests/unit/web/test_openapi.py, tests/integration/web/test_hostile_inputs.py).

Everything a route reaches is real and lives under one root: a recording index with a
segment, a camera registry with a camera (added through the API), the simulated board's
licence store, a TLS directory with the device certificate, and vigil-hwd's commands
(PoE on the simulated board, storage with no disks to touch, system settings on the
sandbox OS backend, the MQTT broker's settings and login, the restream's switch with its
systemctl on the sandbox) served on one real control socket, as vigil-hwd serves them. The
app is driven in-process through Flask's test client (no port), logged in as an admin.

It also loads the OpenAPI description (docs/api/openapi.yaml) and lists its operations,
so the tests are driven by the document and cover a new endpoint as soon as it is there.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.cameras.credentials import Credentials
from appliance.core.control import ControlServer
from appliance.fleet_control import control_handlers as fleet_handlers
from appliance.mqtt.settings import save_credentials
from appliance.poe.control import control_handlers as poe_handlers
from appliance.poe.runtime import SNAPSHOT_NAME, PoeService, build_manager
from appliance.recorder.index import RecordingIndex, Segment
from appliance.storage.control import control_handlers as storage_handlers
from appliance.web import tls
from appliance.web.accounts import AccountStore
from appliance.web.app import create_app
from appliance.web.certificate_api import IDENTITY
from appliance.web.services import WebPaths
from hw.board import load_profile
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = ROOT / "docs" / "api" / "openapi.yaml"
API = "/api/v1"
METHODS = ("get", "put", "post", "delete", "patch")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ROLE_RANK = {"public": -1, "viewer": 0, "operator": 1, "admin": 2}

ADMIN, ADMIN_PASSWORD = "owner", "correct horse battery"
USER_PASSWORD = "a long user password"
CAMERA = "door"                  # in the registry and in the index
OTHER_CAMERA = "garden"          # granted to the viewer, unknown to the registry
SEGMENT_START_US = 1_790_000_000 * 1_000_000
SEGMENTS = {CAMERA: 1, OTHER_CAMERA: 2}   # camera -> the id of its segment in the index
BOX = tls.DeviceIdentity("vigil-test", ("192.0.2.10",))


# --- the OpenAPI document ------------------------------------------------------------------

def load_spec() -> dict[str, Any]:
    with open(SPEC_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)


@dataclass(frozen=True)
class Operation:
    method: str            # upper case
    path: str              # as documented, with {parameters}
    spec: dict[str, Any]   # the operation object

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def role(self) -> str:
        return self.spec["x-vigil-role"]

    @property
    def body_schema(self) -> dict[str, Any] | None:
        content = (self.spec.get("requestBody") or {}).get("content") or {}
        return (content.get("application/json") or {}).get("schema")

    @property
    def path_parameters(self) -> list[dict[str, Any]]:
        return [p for p in self.spec.get("parameters", []) if p.get("in") == "path"]

    def url(self, **values: str) -> str:
        """The path with each parameter replaced by its value (or its documented example)."""
        def fill(match: re.Match) -> str:
            name = match.group(1)
            if name in values:
                return values[name]
            param = next(p for p in self.path_parameters if p["name"] == name)
            return str(param["example"])
        return re.sub(r"\{([^}]+)\}", fill, self.path)


def operations(spec: dict[str, Any]) -> list[Operation]:
    found = []
    for path, item in spec["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method in item:
                op = dict(item[method])
                op["parameters"] = [resolve(spec, p) for p in shared + op.get("parameters", [])]
                found.append(Operation(method.upper(), path, op))
    return found


def resolve(spec: dict[str, Any], schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """A schema with a top-level local $ref followed (the document's components)."""
    while schema is not None and "$ref" in schema:
        node: Any = spec
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def flask_rule_path(rule: str) -> str:
    """/api/v1/recordings/<int:seg_id>.mp4 -> /api/v1/recordings/{seg_id}.mp4"""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


# --- the site ---------------------------------------------------------------------------------

class ApiRig:
    """create_app with every WebPaths entry pointing at real files and a real control
    socket under `root`; `admin` is a logged-in test client with its CSRF token."""

    def __init__(self, root: Path) -> None:
        from appliance.devmode import licence_store
        from tests.unit.system.box import Box

        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.data = root / "data"
        self.config = root / "config" / "vigil.toml"
        self.registry = root / "config" / "cameras.json"
        self.secrets = root / "secrets"
        self.state = root / "hwd-state"
        self.volumes = root / "config" / "data-volumes.json"
        self.tls_dir = root / "tls"
        self.config.parent.mkdir(parents=True)
        # Cameras only on loopback: nothing the tests send can reach another host.
        self.config.write_text('[cameras]\nallowed_networks = "127.0.0.0/8"\n')
        self._recording()
        tls.TlsStore(self.tls_dir).ensure(BOX)
        profile = load_profile("sim")
        self.licence = licence_store(profile, root / "licence" / "licence.txt")

        self.box = Box(root / "box")            # vigil-hwd's system part (sandbox OS)
        self.poe, _ = build_manager(profile, {"poll_interval": 0.2})
        self.poe_service = PoeService(self.poe, self.state)
        self.poe_service.start()
        # The broker's login beside the cameras' (secrets/../mqtt), there from the start.
        self.mqtt_secrets = self.secrets.parent / "mqtt"
        save_credentials(self.mqtt_secrets, Credentials("vigil-box", "box-Passw0rd-1"))
        handlers = {**self.box.handlers, **poe_handlers(self.poe),
                    **storage_handlers(self.volumes, self.state, inventory=lambda: [],
                                       mountpoint=str(root / "vigil")),
                    **fleet_handlers(self.config.parent, self.secrets.parent,
                                     self.box.sandbox.run)}
        self.socket = root / "hwd.sock"
        self.control = ControlServer(self.socket, handlers).start()

        self.accounts = AccountStore(root / "accounts.sqlite3")
        self.app = create_app(self.data, self.accounts, licence=lambda: self.licence,
                              live_url=lambda name: None, paths=WebPaths(
                                  registry=self.registry, secrets=self.secrets,
                                  hwd_state=self.state, hwd_socket=self.socket,
                                  config=self.config, volumes=self.volumes,
                                  tls_dir=self.tls_dir, device_key=root / "keys" / "device.pem"))
        self.app.config[IDENTITY] = lambda: BOX
        self.admin, self.csrf = self.client(setup=True)
        status = self.call("POST", f"{API}/cameras", {
            "name": CAMERA, "label": "Front door", "rtsp": "rtsp://127.0.0.1:8554/door"})
        assert status.status_code == 201, status.json
        wait_until(lambda: (self.state / SNAPSHOT_NAME).exists(), 15, "the PoE snapshot")
        self._users: dict[str, Any] = {"admin": (self.admin, self.csrf)}
        self._lock = threading.Lock()

    def _recording(self) -> None:
        """A minute of each camera's footage in the index (segment ids SEGMENTS), the
        files under recordings/ (not decodable: no test here plays them)."""
        index = RecordingIndex(self.data)
        for camera in SEGMENTS:
            rel = f"recordings/{camera}/2026-09-21/12/seg-1.mp4"
            (self.data / rel).parent.mkdir(parents=True)
            (self.data / rel).write_bytes(b"\0\0\0\x18ftypisom" + bytes(4000))
            seg_id = index.add_segment(Segment(camera, 1, SEGMENT_START_US,
                                               SEGMENT_START_US + 60 * 10**6, 4012, rel))
            assert seg_id == SEGMENTS[camera]
        index.add_alert(SEGMENT_START_US, "warning", "retention",
                        f"camera {CAMERA} will keep only 2.0 days of footage")
        index.close()

    # --- clients ---------------------------------------------------------------------------
    def client(self, username: str = ADMIN, password: str = ADMIN_PASSWORD,
               setup: bool = False):
        client = self.app.test_client()
        path = f"{API}/setup" if setup else f"{API}/login"
        resp = client.post(path, json={"username": username, "password": password})
        assert resp.status_code in (200, 201), resp.json
        return client, resp.json["csrf"]

    def as_role(self, role: str):
        """A logged-in (client, csrf) of `role` (a viewer sees OTHER_CAMERA only); a fresh
        unauthenticated client for "public"."""
        if role == "public":
            return self.app.test_client(), ""
        with self._lock:
            if role not in self._users:
                resp = self.call("POST", f"{API}/users", {
                    "username": f"user-{role}", "password": USER_PASSWORD, "role": role,
                    "cameras": [OTHER_CAMERA] if role == "viewer" else []})
                assert resp.status_code == 201, resp.json
                self._users[role] = self.client(f"user-{role}", USER_PASSWORD)
            return self._users[role]

    def fresh_client(self, role: str):
        """Another session of `role`'s user (made by the account store, no login request:
        the rig's login throttling is not involved), for requests that may end it."""
        self.as_role(role)
        username = ADMIN if role == "admin" else f"user-{role}"
        password = ADMIN_PASSWORD if role == "admin" else USER_PASSWORD
        token, session = self.accounts.login(username, password, "127.0.0.9")
        client = self.app.test_client()
        client.set_cookie("vigil_session", token)
        return client, session.csrf

    def call(self, method: str, path: str, body: Any = None, *, client=None, csrf=None,
             **kwargs):
        client = client or self.admin
        headers = dict(kwargs.pop("headers", {}))
        if method in STATE_CHANGING:
            headers.setdefault("X-CSRF-Token", self.csrf if csrf is None else csrf)
            if body is None and "data" not in kwargs:
                body = {}
        if body is not None:
            kwargs["json"] = body
        return client.open(path, method=method, headers=headers, **kwargs)

    # --- what the tests compare before and after --------------------------------------------
    def state_files(self) -> dict[str, bytes]:
        """Every file a refused request must leave alone, by name (the accounts as their
        users and sessions, not the SQLite bytes: the audit log grows on a refusal)."""
        found: dict[str, bytes] = {}
        for top in (self.root / "config", self.secrets, self.mqtt_secrets, self.tls_dir,
                    self.root / "licence", self.box.root / "persist"):
            if top.exists():
                for path in sorted(top.rglob("*")):
                    if path.is_file() and not path.name.endswith(".lock"):
                        found[str(path.relative_to(self.root))] = path.read_bytes()
        users = self.accounts.export_users()
        found["accounts:users"] = repr(users).encode()
        found["accounts:sessions"] = repr(
            [self.accounts.sessions_of(u["username"]) for u in users]).encode()
        found["accounts:wizard"] = repr(self.accounts.wizard_state()).encode()
        found["sandbox:commands"] = repr(self.box.sandbox.commands).encode()
        found["poe:enabled"] = repr([(p["label"], p["enabled"]) for p in
                                     self.poe.snapshot().to_json()["ports"]]).encode()
        return found

    def close(self) -> None:
        self.control.close()
        self.poe_service.close()
        self.box.close()
        self.accounts.close()
