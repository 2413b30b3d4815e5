"""The configuration backup file: a gzip-compressed tar with a manifest.

Members, in this order, with exactly these names (nothing else is accepted):

    manifest.json             format, version, when, which box, and the size and SHA-256
                              of every other member
    config/system.json        /persist/config files, those that exist
    config/recorder.toml
    config/cameras.json
    config/data-volumes.json
    config/retention.json     the owner's settings files (contents.OWNER_FILES): retention,
    config/recording.json     recording modes and schedules, who may scrape the metrics,
    config/metrics.json       the restream's switch, the PoE ports' choices
    config/restream.json
    config/poe-ports.json
    users.json                the accounts (user name, role, cameras; the password hash
                              unless the backup is sealed)
    secrets.bin               only with a passphrase: camera credentials, the default
                              camera credentials and the password hashes, sealed with
                              scrypt + AES-256-GCM (sealing.py) over the manifest

Integrity: every member's SHA-256 is in the manifest, so a truncated or damaged file is
refused. Authenticity: with a passphrase, the sealed part authenticates the manifest
(hence every member); without one, anybody can rewrite a backup consistently, and the
owner is told so on the page. The board's licence is never in a backup (it is bound
to the board's serial number).

Reading trusts nothing: the size is checked before decompressing, the gzip stream is
unpacked whole (CRC and length checked, output bounded), members are read into memory
(never extracted to disk), only regular files with the names above are accepted
(no '../', absolute names, links or devices), each member and the total are bounded,
and every file is then checked by its owner's loader (contents.py). A refused file
changes nothing; the caller replaces files only after `read_bundle` returned.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from appliance.core.errors import InvalidConfig, ResourceExhausted
from appliance.system.contents import (CONFIG_FILES, check_config_file, check_credentials,
                                       check_users)
from appliance.system.sealing import check_passphrase, open_sealed, seal
from appliance.system.timezones import SYSTEM_ZONEINFO

FORMAT = "vigil-config-backup"
VERSION = 1
# The web layer hands the file to vigil-hwd over its control socket, whose request line
# is at most 64 KiB; base64 makes 40 KiB into 54.6 KiB. A real backup is a few KiB
# (32 cameras and 20 users: about 12 KiB).
MAX_BUNDLE = 40 * 1024
MAX_MEMBER = 512 * 1024       # uncompressed
MAX_TOTAL = 2 * 1024 * 1024   # uncompressed, all members
MAX_TAR = MAX_TOTAL + 64 * 1024   # the members and the tar's own headers
MANIFEST = "manifest.json"
USERS = "users.json"
SECRETS = "secrets.bin"
CONFIG_MEMBERS = {f"config/{name}": name for name in CONFIG_FILES}
MEMBERS = (MANIFEST, *CONFIG_MEMBERS, USERS, SECRETS)


@dataclass(frozen=True)
class Bundle:
    manifest: dict[str, Any]
    config: dict[str, bytes]                   # file name -> content (the files it holds)
    users: list[dict] | None                   # with "hash"; None: no accounts in it
    cameras: dict[str, dict] | None            # camera id -> credentials; None: not in it
    adoption: dict[str, dict] | None           # the default camera credentials
    sealed: bool

    def summary(self) -> dict[str, Any]:
        about = self.manifest.get("about", {})
        return {"created": self.manifest.get("created"), "hostname": about.get("hostname"),
                "made_by_version": about.get("appliance_version"),
                "files": sorted(self.config), "users": len(self.users or []),
                "camera_credentials": None if self.cameras is None else len(self.cameras),
                "sealed": self.sealed}


def _digest(data: bytes) -> dict[str, Any]:
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _associated(manifest: dict[str, Any]) -> bytes:
    """What the sealed part authenticates: the manifest without the sealed part itself."""
    plain = {k: v for k, v in manifest.items() if k != "sealed"}
    plain["files"] = {k: v for k, v in manifest["files"].items() if k != SECRETS}
    return _canonical(plain)


def build_bundle(config: dict[str, bytes], users: list[dict] | None, secrets: dict | None,
                 passphrase: str | None, about: dict[str, Any],
                 now: datetime | None = None) -> bytes:
    """The backup file. `secrets` ({"cameras": {...}, "adoption": {...}}) goes in only
    sealed with `passphrase`; without a passphrase it is left out."""
    created = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    members: dict[str, bytes] = {}
    for name, data in config.items():
        if name not in CONFIG_FILES:
            raise InvalidConfig(f"{name!r} is not a configuration file a backup can hold")
        members[f"config/{name}"] = data
    hashes = {}
    if users is not None:
        users = check_users(users)
        if passphrase is not None:
            hashes = {u["username"]: u["hash"] for u in users}
            users = [{k: v for k, v in u.items() if k != "hash"} for u in users]
        members[USERS] = _canonical(users)
    manifest: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "created": created.isoformat(),
        "about": {k: str(v)[:80] for k, v in about.items()},
        "files": {name: _digest(data) for name, data in members.items()}}
    if passphrase is not None:
        check_passphrase(passphrase)
        payload = {"cameras": (secrets or {}).get("cameras", {}),
                   "adoption": (secrets or {}).get("adoption", {}), "password_hashes": hashes}
        sealed, params = seal(_canonical(payload), passphrase, _associated(manifest))
        members[SECRETS] = sealed
        manifest["files"][SECRETS] = _digest(sealed)
        manifest["sealed"] = params
    out = io.BytesIO()
    mtime = int(created.timestamp())
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=mtime) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data in [(MANIFEST, _canonical(manifest)), *members.items()]:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), mtime, 0o600
                tar.addfile(info, io.BytesIO(data))
    data = out.getvalue()
    if len(data) > MAX_BUNDLE:
        raise ResourceExhausted(f"the configuration makes a {len(data) // 1024} KiB backup; "
                                f"a backup can be at most {MAX_BUNDLE // 1024} KiB")
    return data


def file_name(hostname: str, created: datetime | None = None) -> str:
    when = (created or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return f"vigil-config-{hostname}-{when}.tar.gz"


def _gunzip(data: bytes) -> bytes:
    """The whole gzip stream, its CRC and length checked (a cut file is refused even when
    the cut only took the trailer), at most MAX_TAR bytes of output (no bomb)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_TAR)
    except zlib.error as exc:
        raise InvalidConfig(f"the backup file is damaged ({exc})") from None
    if inflater.unconsumed_tail:
        raise InvalidConfig("the backup unpacks to more than a configuration can be; it is "
                            "refused")
    if not inflater.eof:
        raise InvalidConfig("the backup file is truncated")
    if inflater.unused_data:
        raise InvalidConfig("the backup file has data after its end")
    return out


def _members(data: bytes) -> dict[str, bytes]:
    """The members of the tar, in memory, each checked before it is read."""
    found: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(_gunzip(data)), mode="r:") as tar:
            while True:
                member = tar.next()
                if member is None:
                    break
                name = member.name
                if name not in MEMBERS:
                    shown = name[:80]
                    why = ("a path outside the backup" if name.startswith("/") or ".." in name
                           else "an unexpected file")
                    raise InvalidConfig(f"the backup holds {why} ({shown!r}); it is refused")
                if not member.isreg():
                    raise InvalidConfig(f"the backup holds a link or special file ({name!r}); "
                                        "it is refused")
                if name in found:
                    raise InvalidConfig(f"the backup holds {name!r} twice")
                if member.size > MAX_MEMBER or total + member.size > MAX_TOTAL:
                    raise InvalidConfig(f"the backup's {name} is too large "
                                        f"({member.size // 1024} KiB)")
                reader = tar.extractfile(member)
                content = reader.read(member.size + 1) if reader else b""
                if len(content) != member.size:
                    raise InvalidConfig(f"the backup is truncated (in {name})")
                total += member.size
                found[name] = content
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise InvalidConfig(f"the backup file is damaged or truncated ({exc})") from None
    return found


def _manifest(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise InvalidConfig("not a Vigil configuration backup (it has no manifest.json)")
    try:
        manifest = json.loads(raw)
    except ValueError:
        raise InvalidConfig("the backup's manifest is damaged") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidConfig("not a Vigil configuration backup (foreign manifest format)")
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidConfig("the backup's manifest is damaged (no format version)")
    if version > VERSION:
        raise InvalidConfig(f"this backup was made by a newer Vigil (format {version}); "
                            "update this box first")
    if version != VERSION:
        raise InvalidConfig(f"backup format {version} is not supported")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(v, dict) and set(v) == {"size", "sha256"} for v in files.values()):
        raise InvalidConfig("the backup's manifest is damaged (file list)")
    if not isinstance(manifest.get("about", {}), dict):
        raise InvalidConfig("the backup's manifest is damaged (about)")
    return manifest


def read_bundle(data: Any, passphrase: str | None,
                zoneinfo: Path = SYSTEM_ZONEINFO) -> Bundle:
    """The checked content of a backup file, or InvalidConfig with the reason."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise InvalidConfig("the backup file is empty")
    if len(data) > MAX_BUNDLE:
        raise InvalidConfig(f"the file is {len(data) // 1024} KiB; a Vigil configuration "
                            f"backup is at most {MAX_BUNDLE // 1024} KiB, so this is not one")
    if not bytes(data[:2]) == b"\x1f\x8b":
        raise InvalidConfig("not a Vigil configuration backup (expected the .tar.gz file the "
                            "box made)")
    members = _members(bytes(data))
    manifest = _manifest(members.pop(MANIFEST, None))
    files = manifest["files"]
    if set(files) != set(members):
        missing = sorted(set(files) - set(members))
        extra = sorted(set(members) - set(files))
        raise InvalidConfig("the backup does not match its manifest ("
                            + (f"missing {', '.join(missing)}" if missing else
                               f"not listed {', '.join(extra)}") + ")")
    for name, content in members.items():
        if _digest(content) != files[name]:
            raise InvalidConfig(f"the backup's {name} is damaged (its checksum does not match)")
    secrets: dict[str, Any] = {}
    if SECRETS in members:
        if not passphrase:
            raise InvalidConfig("this backup is protected with a passphrase: enter it to "
                                "restore")
        plain = open_sealed(members[SECRETS], passphrase, _associated(manifest),
                            manifest.get("sealed"))
        try:
            secrets = json.loads(plain)
        except ValueError:
            raise InvalidConfig("the backup's secret part is damaged") from None
        if not isinstance(secrets, dict):
            raise InvalidConfig("the backup's secret part is damaged")
    elif passphrase:
        raise InvalidConfig("this backup has no passphrase (it holds no camera passwords); "
                            "leave the passphrase empty to restore it")
    config = {}
    for member, name in CONFIG_MEMBERS.items():
        if member in members:
            check_config_file(name, members[member], zoneinfo)
            config[name] = members[member]
    users = None
    if USERS in members:
        try:
            users = json.loads(members[USERS])
        except ValueError:
            raise InvalidConfig("the backup's user list is damaged") from None
        hashes = secrets.get("password_hashes", {})
        if not isinstance(hashes, dict):
            raise InvalidConfig("the backup's secret part is damaged (passwords)")
        if isinstance(users, list) and hashes:
            users = [{**u, "hash": hashes.get(u.get("username"))} if isinstance(u, dict) else u
                     for u in users]
        users = check_users(users)
    cameras = adoption = None
    if SECRETS in members:
        cameras = check_credentials(secrets.get("cameras", {}), "camera credentials")
        adoption = check_credentials(secrets.get("adoption", {}), "default camera credentials")
    return Bundle(manifest, config, users, cameras, adoption, SECRETS in members)
