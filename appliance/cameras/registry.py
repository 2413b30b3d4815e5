"""The camera registry: which cameras the box records, who they are, and at what cost.

Stored as one JSON file on the persist partition (small, written only on change,
atomically) with credentials kept apart (credentials.py). Every change happens under an
exclusive file lock and re-reads the file first, so concurrent requests (web UI, CLI,
PoE auto-adoption) cannot both add "the last camera that fits".

Identity survives a DHCP address change: a camera is the same camera when its ONVIF
endpoint reference, its maker + serial number, or its MAC address match. Rediscovery
updates the address (and the host in its stream and snapshot URIs) in place and never
creates a second entry.

Incoming bandwidth budget (as commercial NVRs specify "incoming bandwidth"): the main
plus sub stream bitrates of all enabled cameras must fit; a camera whose bitrate is not
known counts with an assumed figure.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote, urlsplit, urlunsplit

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.config.cameras import CameraSettings
from appliance.config.recorder import CAMERA_NAME, CameraConfig, check_stream_url
from appliance.core.errors import DataLoss, FailedPrecondition, InvalidConfig, ResourceExhausted

REGISTRY_VERSION = 1


@dataclass(frozen=True)
class StreamInfo:
    uri: str                 # without credentials
    codec: str = ""
    width: int = 0
    height: int = 0
    fps: float = 0.0
    bitrate_kbps: int = 0


@dataclass(frozen=True)
class Camera:
    id: str                  # the recorder's name for it: directory, index rows, API
    label: str               # what the owner sees ("Front door", "Port 3")
    host: str
    main: StreamInfo
    sub: StreamInfo | None = None
    xaddr: str = ""          # ONVIF device service URL
    endpoint: str = ""       # ONVIF endpoint reference (urn:uuid:...)
    manufacturer: str = ""
    model: str = ""
    firmware: str = ""
    serial: str = ""
    mac: str = ""
    snapshot_uri: str = ""
    poe_port: str = ""
    enabled: bool = True
    added: float = 0.0

    def __post_init__(self) -> None:
        if not CAMERA_NAME.match(self.id):
            raise InvalidConfig(f"camera id {self.id!r}: use 1-32 letters, digits, '-' or '_'")
        check_stream_url(self.id, self.main.uri)
        if self.sub is not None:
            check_stream_url(self.id, self.sub.uri)
        for uri in (self.main.uri, self.sub.uri if self.sub else ""):
            if urlsplit(uri).password is not None:
                raise InvalidConfig(f"camera {self.id}: stream URIs are stored without "
                                    "passwords; give the credentials separately")

    def same_device(self, other: Camera) -> bool:
        """Endpoint reference, maker + serial, or MAC: any one that both have and agree."""
        if self.endpoint and self.endpoint == other.endpoint:
            return True
        if self.serial and self.serial == other.serial and \
                self.manufacturer.lower() == other.manufacturer.lower():
            return True
        return bool(self.mac) and normal_mac(self.mac) == normal_mac(other.mac)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Camera:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["main"] = StreamInfo(**values["main"])
        if values.get("sub"):
            values["sub"] = StreamInfo(**values["sub"])
        return cls(**values)


def normal_mac(mac: str) -> str:
    return re.sub(r"[^0-9a-f]", "", mac.lower())


def with_host(uri: str, host: str) -> str:
    """The same URI pointing at a new address (the port and path stay)."""
    if not uri:
        return uri
    parts = urlsplit(uri)
    netloc = host if ":" not in host else f"[{host}]"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def with_credentials(uri: str, creds: Credentials | None) -> str:
    if creds is None:
        return uri
    parts = urlsplit(uri)
    userinfo = f"{quote(creds.username, safe='')}:{quote(creds.password, safe='')}@"
    return urlunsplit(parts._replace(netloc=userinfo + parts.netloc))


class CameraRegistry:
    def __init__(self, path: Path, credentials: CredentialStore, settings: CameraSettings,
                 channel_limit: Callable[[], int] | None = None) -> None:
        self.path = Path(path)
        self.credentials = credentials
        self.settings = settings
        self.channel_limit = channel_limit

    # --- reading --------------------------------------------------------------------------
    def cameras(self) -> list[Camera]:
        return self._load()

    def get(self, camera_id: str) -> Camera:
        for cam in self._load():
            if cam.id == camera_id:
                return cam
        raise InvalidConfig(f"no camera {camera_id!r}")

    def recorder_configs(self) -> list[CameraConfig]:
        """What the recorder records: main streams with the credentials filled in."""
        return [CameraConfig(cam.id, with_credentials(cam.main.uri, self.credentials.get(cam.id)),
                             enabled=cam.enabled) for cam in self._load()]

    def bandwidth_kbps(self, cams: list[Camera] | None = None) -> int:
        return sum(self._cost_kbps(c) for c in (cams if cams is not None else self._load())
                   if c.enabled)

    def _cost_kbps(self, cam: Camera) -> int:
        s = self.settings
        main = cam.main.bitrate_kbps or s.assumed_main_kbps
        sub = (cam.sub.bitrate_kbps or s.assumed_sub_kbps) if cam.sub else 0
        return main + sub

    # --- changes --------------------------------------------------------------------------
    def add(self, camera: Camera, creds: Credentials | None = None) -> Camera:
        """Add a new camera; refused if it is already there, does not fit the incoming
        bandwidth budget, or would exceed the licensed channels."""
        with self._locked() as cams:
            for cam in cams:
                if cam.id == camera.id:
                    raise FailedPrecondition(f"a camera named {camera.id} already exists")
                if cam.same_device(camera):
                    raise FailedPrecondition(
                        f"this camera is already added as {cam.id} ({cam.label}); it was "
                        f"found again at {camera.host}")
            camera = replace(camera, added=camera.added or time.time())
            if camera.enabled:
                self._check_channels([c for c in cams if c.enabled] + [camera])
                self._check_budget(cams, camera)
            if creds is not None:
                self.credentials.put(camera.id, creds)
            cams.append(camera)
        return camera

    def observe(self, found: Camera) -> Camera | None:
        """A camera seen again (discovery, DHCP, PoE): update its address if it moved.
        Returns the registered camera, or None if it is not one of ours."""
        with self._locked() as cams:
            for i, cam in enumerate(cams):
                if not cam.same_device(found):
                    continue
                if found.host and found.host != cam.host:
                    cams[i] = moved(cam, found.host, found.xaddr)
                return cams[i]
        return None

    def set_enabled(self, camera_id: str, enabled: bool) -> Camera:
        with self._locked() as cams:
            i = _index_of(cams, camera_id)
            changed = replace(cams[i], enabled=enabled)
            if enabled and not cams[i].enabled:
                others = [c for c in cams if c.enabled and c.id != camera_id]
                self._check_channels(others + [changed])
                self._check_budget([c for c in cams if c.id != camera_id], changed)
            cams[i] = changed
            return changed

    def set_poe_port(self, camera_id: str, label: str) -> Camera:
        """Link a camera to the PoE port that powers it ("" to unlink); a port powers one
        camera, so another camera linked to the same port is unlinked."""
        with self._locked() as cams:
            i = _index_of(cams, camera_id)
            for j, cam in enumerate(cams):
                if j != i and label and cam.poe_port == label:
                    cams[j] = replace(cam, poe_port="")
            cams[i] = replace(cams[i], poe_port=label)
            return cams[i]

    def set_credentials(self, camera_id: str, creds: Credentials) -> None:
        with self._locked() as cams:
            _index_of(cams, camera_id)
            self.credentials.put(camera_id, creds)

    def remove(self, camera_id: str) -> None:
        """Forget a camera (its recordings stay until retention removes them)."""
        with self._locked() as cams:
            del cams[_index_of(cams, camera_id)]
            self.credentials.delete(camera_id)

    def _check_budget(self, cams: list[Camera], camera: Camera) -> None:
        budget = int(self.settings.incoming_budget_mbps * 1000)
        used = self.bandwidth_kbps(cams)
        need = self._cost_kbps(camera)
        if used + need > budget:
            raise ResourceExhausted(
                f"camera {camera.id} needs {need / 1000:.1f} Mb/s (main + sub stream); "
                f"{used / 1000:.1f} of the box's {budget / 1000:.0f} Mb/s incoming bandwidth "
                "are in use. Lower the camera's bitrate or disable another camera.")

    def _check_channels(self, enabled: list[Camera]) -> None:
        if self.channel_limit is None:
            return
        limit = self.channel_limit()
        if len(enabled) > limit:
            raise ResourceExhausted(
                f"the licence allows {limit} cameras and {limit} are recording; "
                "disable a camera or install a licence with more channels")

    # --- storage ----------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[list[Camera]]:
        """Exclusive across processes: read, let the caller change, write atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.with_name("." + self.path.name + ".lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                cams = self._load()
                before = [c.to_json() for c in cams]
                yield cams
                if [c.to_json() for c in cams] != before:
                    self._save(cams)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _load(self) -> list[Camera]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise DataLoss(f"{self.path}: the camera list cannot be read ({exc})") from None
        try:
            return [Camera.from_json(entry) for entry in data["cameras"]]
        except (KeyError, TypeError, InvalidConfig) as exc:
            raise DataLoss(f"{self.path}: the camera list is damaged ({exc})") from None

    def _save(self, cams: list[Camera]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump({"version": REGISTRY_VERSION, "cameras": [c.to_json() for c in cams]},
                      out, indent=1, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def moved(cam: Camera, host: str, xaddr: str = "") -> Camera:
    return replace(cam, host=host, xaddr=xaddr or with_host(cam.xaddr, host),
                   main=replace(cam.main, uri=with_host(cam.main.uri, host)),
                   sub=replace(cam.sub, uri=with_host(cam.sub.uri, host)) if cam.sub else None,
                   snapshot_uri=with_host(cam.snapshot_uri, host))


def _index_of(cams: list[Camera], camera_id: str) -> int:
    for i, cam in enumerate(cams):
        if cam.id == camera_id:
            return i
    raise InvalidConfig(f"no camera {camera_id!r}")


def from_onboarded(onboarded, camera_id: str, label: str = "") -> Camera:
    """A registry entry from an ONVIF onboarding result (appliance.cameras.onvif)."""
    def stream(s) -> StreamInfo | None:
        if s is None:
            return None
        return StreamInfo(s.uri, s.codec or "", s.width or 0, s.height or 0, s.fps or 0.0,
                          s.bitrate_kbps or 0)
    if onboarded.main is None:
        from appliance.core.errors import FailedPrecondition
        raise FailedPrecondition("the camera reported no stream that can be recorded")
    host = urlsplit(onboarded.xaddr).hostname or ""
    return Camera(camera_id, label or camera_id, host, stream(onboarded.main),
                  stream(onboarded.sub), xaddr=onboarded.xaddr,
                  endpoint=onboarded.endpoint_reference or "",
                  manufacturer=onboarded.manufacturer or "", model=onboarded.model or "",
                  firmware=onboarded.firmware or "", serial=onboarded.serial or "",
                  mac=onboarded.mac or "", snapshot_uri=onboarded.snapshot_uri or "")
