"""Backup files for the tests: a realistic configuration, and ways to take a good backup
apart and put it together again with one thing wrong."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from typing import Callable

from appliance.cameras.registry import Camera, StreamInfo
from appliance.system.backup import build_bundle
from appliance.system.settings import SystemSettings

PASSPHRASE = "correct horse battery staple"
HASH = "$scrypt$n=16384,r=8,p=1$" + "00" * 16 + "$" + "11" * 32
USERS = [{"username": "owner", "role": "admin", "cameras": [], "hash": HASH},
         {"username": "guard", "role": "viewer", "cameras": ["door"], "hash": HASH.replace("1", "2")}]
CAMERA_PASSWORD = "Cam3raSecret9xyz"
SECRETS = {"cameras": {"door": {"username": "admin", "password": CAMERA_PASSWORD}},
           "adoption": {"default": {"username": "admin", "password": "Def4ultCamPassw0rd"}}}


def camera_list(*ids: str) -> bytes:
    cams = [Camera(i, i.title(), "192.168.1.64", StreamInfo(f"rtsp://192.168.1.64:554/{i}/main",
                                                            "H264", 1920, 1080, 25.0, 4096),
                   StreamInfo(f"rtsp://192.168.1.64:554/{i}/sub"), mac="00:11:22:33:44:55",
                   poe_port="1").to_json() for i in ids]
    return json.dumps({"version": 1, "cameras": cams}, indent=1).encode()


def config(hostname: str = "garage") -> dict[str, bytes]:
    settings = SystemSettings(hostname).updated({"time": {"timezone": "Europe/Berlin"}})
    return {"system.json": settings.dumps(),
            "recorder.toml": b"[recorder]\nsegment_seconds = 60\n\n[storage]\nmin_free_percent = 5\n",
            "cameras.json": camera_list("door"),
            "data-volumes.json": json.dumps({"volumes": [{"uuid": "0b5e3c1a-4d3e-4f7a-9c2b-1d2e3f4a5b6c",
                                                          "mountpoint": "/srv/vigil"}]}).encode()}


def good(passphrase: str | None = None, **overrides) -> bytes:
    return build_bundle(overrides.get("config", config()), overrides.get("users", USERS),
                        SECRETS, passphrase, {"hostname": "garage", "appliance_version": "0.1.0"})


def members(data: bytes) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar.getmembers()]


def pack(entries: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in entries:
                if info.isreg():
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                else:
                    tar.addfile(info)
    return out.getvalue()


def entry(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE,
          link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o600
    return info, data


def rewritten(data: bytes, change: Callable[[dict[str, bytes]], None],
              fix_manifest: bool = True) -> bytes:
    """The backup with `change` applied to its members (name -> bytes); the manifest's
    checksums follow the change when `fix_manifest` (an attacker who recomputes them)."""
    files = {info.name: content for info, content in members(data)}
    change(files)
    if fix_manifest and "manifest.json" in files:
        manifest = json.loads(files["manifest.json"])
        manifest["files"] = {name: {"size": len(content),
                                    "sha256": hashlib.sha256(content).hexdigest()}
                             for name, content in files.items() if name != "manifest.json"}
        files["manifest.json"] = json.dumps(manifest).encode()
    return pack([(tarfile.TarInfo(name), content) for name, content in files.items()])


def with_manifest(data: bytes, change: Callable[[dict], None]) -> bytes:
    def edit(files):
        manifest = json.loads(files["manifest.json"])
        change(manifest)
        files["manifest.json"] = json.dumps(manifest).encode()
    return rewritten(data, edit, fix_manifest=False)
