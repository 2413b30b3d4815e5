"""The export manifest: what an export contains, signed by the box; and its offline check.

manifest.json is canonical JSON (sorted keys, no spaces, ASCII only, integers and
strings only: no floats, whose text form varies between implementations). manifest.sig
is the base64 of the detached Ed25519 signature, by the device key, over

    b"vigil-export-manifest-v1\\n" + <the bytes of manifest.json>

(the prefix keeps a signature made for a manifest from meaning anything else). Anyone
can check an export with the public key it carries; that the key is the box's is what
the person confirms by comparing the fingerprint with the one the box shows.

See docs/design/export.md for the fields.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.core.device_key import (DeviceKey, fingerprint, normalise_fingerprint,
                                       public_key_from_b64, raw_public, verify)
from appliance.core.errors import InvalidConfig
from appliance.recorder.index import Segment
from appliance.recorder.integrity import chain_problems, file_sha256

FORMAT = "vigil-export"
VERSION = 1
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"
SIGNING_CONTEXT = b"vigil-export-manifest-v1\n"
SAFE_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.mp4$")

# file_check of a source segment: what the box found when it read the file for the export
CHECK_OK = "ok"              # the file's SHA-256 matched the one recorded at close
CHECK_CHANGED = "changed"    # it did not: the file changed on the box after recording
CHECK_MISSING = "missing"    # the file was lost before the export (index status missing)
CHECK_NO_HASH = "no_hash"    # the index holds no hash for it (nothing to compare)


def iso(us: int | None) -> str | None:
    if us is None:
        return None
    return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat(timespec="milliseconds")


def span(start_us: int, end_us: int) -> dict[str, Any]:
    return {"start_us": start_us, "end_us": end_us, "start": iso(start_us), "end": iso(end_us)}


# --- building ---------------------------------------------------------------------------
def segment_entry(seg: Segment, file_check: str) -> dict[str, Any]:
    return {"path": seg.path, "seq": seg.seq, "start_us": seg.start_us, "end_us": seg.end_us,
            "bytes": seg.bytes, "sha256": seg.sha256, "prev_chain": seg.prev_chain,
            "chain": seg.chain, "status": seg.status, "file_check": file_check}


def build_manifest(*, export_id: str, created_us: int, serial: str, key: DeviceKey,
                   requested: tuple[int, int], covered: tuple[int, int] | None,
                   cameras: list[dict[str, Any]], gap_split_us: int) -> dict[str, Any]:
    """The whole manifest. `cameras`: one entry per camera, each with `camera`, `files`
    (name, sha256, bytes, start_us/end_us, codecs, packet counts), `segments`
    (segment_entry), `gaps` and `audio_dropped`."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "export_id": export_id,
        "created_us": created_us,
        "created": iso(created_us),
        "software": {"name": "vigil-nvr", "version": __version__},
        "appliance": {"serial": serial, "public_key": key.public_b64,
                      "fingerprint": key.fingerprint},
        "range": {"requested": span(*requested),
                  "covered": span(*covered) if covered else None},
        "gap_split_us": gap_split_us,
        "cameras": sorted(cameras, key=lambda c: c["camera"]),
    }


# --- canonical form and signature --------------------------------------------------------
def _check_types(value: Any, where: str = "manifest") -> None:
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return
    if isinstance(value, float):
        raise InvalidConfig(f"{where}: floats are not allowed in a manifest ({value!r})")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidConfig(f"{where}: keys must be text ({key!r})")
            _check_types(item, f"{where}.{key}")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_types(item, f"{where}[{i}]")
        return
    raise InvalidConfig(f"{where}: {type(value).__name__} cannot go in a manifest")


def canonical(manifest: dict[str, Any]) -> bytes:
    """Sorted keys, no spaces, ASCII (other characters as \\u escapes), no floats."""
    _check_types(manifest)
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def sign(data: bytes, key: DeviceKey) -> str:
    """base64 of the Ed25519 signature over SIGNING_CONTEXT + data."""
    return base64.b64encode(key.sign(SIGNING_CONTEXT + data)).decode("ascii")


def signature_valid(data: bytes, signature_b64: str, public_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return verify(public_key_from_b64(public_b64), signature, SIGNING_CONTEXT + data)


def write_manifest(directory: Path, manifest: dict[str, Any], key: DeviceKey) -> bytes:
    """manifest.json (canonical) and manifest.sig in `directory`; the bytes signed."""
    data = canonical(manifest)
    (Path(directory) / MANIFEST_NAME).write_bytes(data)
    (Path(directory) / SIGNATURE_NAME).write_text(sign(data, key) + "\n", encoding="ascii")
    return data


# --- offline verification ----------------------------------------------------------------
@dataclass
class VerifyReport:
    directory: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signature: str = "not checked"   # valid | invalid | not checked
    fingerprint: str | None = None
    public_key: str | None = None
    export_id: str | None = None
    serial: str | None = None
    created: str | None = None
    files_checked: int = 0
    segments_checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def verify_export(directory: Path, expect_fingerprint: str | None = None) -> VerifyReport:
    """Check an export without the box: the signature, each exported file's SHA-256, the
    source segments' hash chain (from the manifest alone), missing and unexpected files.
    Every failure is one line in `problems`; gaps and dropped audio are `notes`."""
    directory = Path(directory)
    report = VerifyReport(str(directory))
    if not directory.is_dir():
        report.problems.append(f"{directory} is not a directory")
        return report
    manifest_path, sig_path = directory / MANIFEST_NAME, directory / SIGNATURE_NAME
    if not manifest_path.is_file():
        report.problems.append(f"{MANIFEST_NAME} is missing: this is not a complete export")
        return report
    data = manifest_path.read_bytes()
    try:
        manifest = json.loads(data)
        if not isinstance(manifest, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        report.problems.append(f"{MANIFEST_NAME} is not valid JSON ({exc}): it was changed "
                               "or damaged")
        return report
    appliance = manifest.get("appliance") or {}
    report.export_id = manifest.get("export_id")
    report.serial = appliance.get("serial")
    report.created = manifest.get("created")
    report.public_key = appliance.get("public_key")
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("version"), int):
        report.problems.append(f"{MANIFEST_NAME} is not a Vigil export manifest")
        return report
    if manifest["version"] > VERSION:
        report.problems.append(f"{MANIFEST_NAME} has format version {manifest['version']}; "
                               f"this tool reads up to {VERSION} (update it)")
        return report
    _check_signature(report, data, sig_path)
    if report.fingerprint and expect_fingerprint is not None and \
            normalise_fingerprint(expect_fingerprint) != report.fingerprint:
        report.problems.append(f"the export was signed by device key {report.fingerprint}, "
                               f"not by {normalise_fingerprint(expect_fingerprint)} (another box, "
                               "or a forged key)")
    if report.fingerprint and appliance.get("fingerprint") != report.fingerprint:
        report.problems.append("the manifest's fingerprint does not belong to its public key")
    listed = _check_files(report, directory, manifest)
    _check_extra(report, directory, listed)
    _check_segments(report, manifest)
    return report


def _check_signature(report: VerifyReport, data: bytes, sig_path: Path) -> None:
    try:
        public = public_key_from_b64(report.public_key or "")
    except InvalidConfig:
        report.signature = "invalid"
        report.problems.append(f"{MANIFEST_NAME} carries no usable device public key")
        return
    report.fingerprint = fingerprint(raw_public(public))
    if not sig_path.is_file():
        report.signature = "invalid"
        report.problems.append(f"{SIGNATURE_NAME} is missing: the manifest cannot be trusted")
        return
    if signature_valid(data, sig_path.read_text(encoding="ascii", errors="replace"),
                       report.public_key):
        report.signature = "valid"
    else:
        report.signature = "invalid"
        report.problems.append(f"signature invalid: {MANIFEST_NAME} was changed after the "
                               f"export (or {SIGNATURE_NAME} belongs to another manifest)")


def _check_files(report: VerifyReport, directory: Path, manifest: dict[str, Any]) -> set[str]:
    listed = {MANIFEST_NAME, SIGNATURE_NAME}
    for cam in manifest.get("cameras") or []:
        camera = cam.get("camera")
        for entry in cam.get("files") or []:
            name = entry.get("name", "")
            if not isinstance(name, str) or not SAFE_FILE_NAME.match(name):
                report.problems.append(f"camera {camera}: the manifest lists an unsafe file "
                                       f"name {name!r}; not read")
                continue
            listed.add(name)
            path = directory / name
            if not path.is_file():
                report.problems.append(f"camera {camera}: exported file {name} is missing")
                continue
            report.files_checked += 1
            actual = file_sha256(path)
            if actual != entry.get("sha256"):
                report.problems.append(f"camera {camera}: exported file {name} has a different "
                                       "SHA-256 than the manifest lists (the file was changed)")
            elif path.stat().st_size != entry.get("bytes"):
                report.problems.append(f"camera {camera}: exported file {name} has a different "
                                       "size than the manifest lists")
        if cam.get("audio_dropped"):
            report.notes.append(f"camera {camera}: audio not exported: {cam['audio_dropped']}")
        for gap in cam.get("gaps") or []:
            report.notes.append(f"camera {camera}: no footage {gap.get('start')} .. "
                                f"{gap.get('end')} ({', '.join(gap.get('causes') or [])})")
    return listed


def _check_extra(report: VerifyReport, directory: Path, listed: set[str]) -> None:
    for path in sorted(directory.rglob("*")):
        rel = path.relative_to(directory).as_posix()
        if rel in listed:
            continue
        kind = "directory" if path.is_dir() else "file"
        report.problems.append(f"unexpected {kind} {rel} (not listed in the manifest)")


def _check_segments(report: VerifyReport, manifest: dict[str, Any]) -> None:
    for cam in manifest.get("cameras") or []:
        camera = cam.get("camera")
        segments = []
        for entry in cam.get("segments") or []:
            try:
                segments.append(Segment(
                    camera=camera, seq=entry["seq"], start_us=entry["start_us"],
                    end_us=entry["end_us"], bytes=entry["bytes"], path=entry["path"],
                    status=entry.get("status", "ok"), sha256=entry.get("sha256"),
                    prev_chain=entry.get("prev_chain"), chain=entry.get("chain")))
            except (KeyError, TypeError):
                report.problems.append(f"camera {camera}: a source segment entry is incomplete")
                continue
            check = entry.get("file_check")
            if check == CHECK_CHANGED:
                report.problems.append(f"camera {camera}: source segment {entry['path']} no "
                                       "longer matched its recorded SHA-256 when exported (it "
                                       "was changed on the box after recording)")
            elif check == CHECK_MISSING:
                report.notes.append(f"camera {camera}: source segment {entry['path']} was lost "
                                    "before the export (its footage is a gap)")
        report.segments_checked += len(segments)
        for problem in chain_problems(segments):
            report.problems.append(f"camera {camera}: source segment {problem}")
