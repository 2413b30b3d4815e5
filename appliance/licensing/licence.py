"""The licence file: three ASCII lines, signed bytes exactly as written.

    vigil-licence-v1
    {"channels":16,"edition":"standard","expires":null,"issued":"2026-11-23","licence_id":"...","serial":"..."}
    ed25519:<base64 signature of line 2's bytes>

The signature covers line 2 byte for byte, and line 2 must be the canonical encoding of
its fields (sorted keys, no spaces), so a reordered, duplicated or re-spaced field is
refused even before the signature is checked. Every field is checked for its exact type:
`channels` is one of 8, 16, 32 as a JSON integer (not "8", 8.5, true or 2^31).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import asdict, dataclass
from datetime import date

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.core.errors import InvalidConfig

MAGIC = "vigil-licence-v1"
SIG_PREFIX = "ed25519:"
MAX_BYTES = 4096
CHANNELS = (8, 16, 32)
EDITIONS = ("standard", "pro")
FIELDS = ("channels", "edition", "expires", "issued", "licence_id", "serial")
LICENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{3,63}$")
SERIAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_-]{3,63}$")


class LicenceError(InvalidConfig):
    """The licence file is not valid for this box; the message says why."""


@dataclass(frozen=True)
class Licence:
    licence_id: str
    serial: str
    channels: int
    edition: str
    issued: str            # ISO date
    expires: str | None    # ISO date, or None for a perpetual licence

    def payload(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=True).encode("ascii")

    def to_json(self) -> dict:
        return asdict(self)


def sign(licence: Licence, key: Ed25519PrivateKey) -> bytes:
    check_fields(licence)
    payload = licence.payload()
    signature = base64.b64encode(key.sign(payload)).decode("ascii")
    return f"{MAGIC}\n{payload.decode('ascii')}\n{SIG_PREFIX}{signature}\n".encode("ascii")


def verify(data: bytes, public_keys: list[Ed25519PublicKey], serial: str,
           today: date) -> Licence:
    """The licence in `data` if it is genuine, for this board, and valid today."""
    payload, signature = _split(data)
    licence = _parse_payload(payload)
    if not any(_signed_by(key, signature, payload) for key in public_keys):
        raise LicenceError("the licence signature is not valid (a changed file, or not "
                           "issued by the vendor)")
    if licence.serial != serial:
        raise LicenceError(f"this licence is for the device {licence.serial}, not for this "
                           f"box ({serial})")
    if date.fromisoformat(licence.issued) > today:
        raise LicenceError(f"this licence is not valid before {licence.issued} (is the "
                           "box's clock right?)")
    if licence.expires is not None and date.fromisoformat(licence.expires) < today:
        raise LicenceError(f"this licence expired on {licence.expires}")
    return licence


def _split(data: bytes) -> tuple[bytes, bytes]:
    if len(data) > MAX_BYTES:
        raise LicenceError(f"a licence file is at most {MAX_BYTES} bytes; this one has "
                           f"{len(data)}")
    if b"\0" in data:
        raise LicenceError("the licence file contains NUL bytes")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise LicenceError("the licence file must be plain ASCII text") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    if len(lines) != 3:
        raise LicenceError(f"a licence file has exactly 3 lines; this one has {len(lines)}")
    magic, payload, sig_line = lines
    if magic != MAGIC:
        raise LicenceError(f"not a Vigil licence (first line should be {MAGIC!r})")
    if not sig_line.startswith(SIG_PREFIX):
        raise LicenceError(f"the third line must start with {SIG_PREFIX!r}")
    try:
        signature = base64.b64decode(sig_line[len(SIG_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise LicenceError("the signature is not valid base64") from None
    if len(signature) != 64:
        raise LicenceError("an Ed25519 signature has 64 bytes")
    return payload.encode("ascii"), signature


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise LicenceError(f"the licence repeats the field(s) {', '.join(dupes)}")
    return dict(pairs)


def _parse_payload(payload: bytes) -> Licence:
    try:
        fields = json.loads(payload, object_pairs_hook=_no_duplicates,
                            parse_constant=_reject_constant)
    except ValueError as exc:
        if isinstance(exc, LicenceError):
            raise
        raise LicenceError(f"the licence fields are not valid JSON ({exc})") from None
    if not isinstance(fields, dict):
        raise LicenceError("the licence fields must be a JSON object")
    missing = sorted(set(FIELDS) - set(fields))
    extra = sorted(set(fields) - set(FIELDS))
    if missing or extra:
        raise LicenceError("the licence fields are wrong: " + "; ".join(
            part for part in (f"missing {', '.join(missing)}" if missing else "",
                              f"unknown {', '.join(extra)}" if extra else "") if part))
    licence = Licence(**fields)
    check_fields(licence)
    if licence.payload() != payload:
        raise LicenceError("the licence fields are not in canonical form (reordered or "
                           "re-spaced)")
    return licence


def _reject_constant(name: str) -> None:
    raise LicenceError(f"the licence contains {name}, which is not a valid value")


def check_fields(licence: Licence) -> None:
    ch = licence.channels
    if type(ch) is not int or ch not in CHANNELS:
        raise LicenceError(f"channels must be one of {', '.join(map(str, CHANNELS))}, "
                           f"not {ch!r}")
    if licence.edition not in EDITIONS:
        raise LicenceError(f"edition must be one of {', '.join(EDITIONS)}, not "
                           f"{licence.edition!r}")
    if not isinstance(licence.licence_id, str) or not LICENCE_ID.match(licence.licence_id):
        raise LicenceError(f"licence_id {licence.licence_id!r} is not valid")
    if not isinstance(licence.serial, str) or not SERIAL.match(licence.serial):
        raise LicenceError(f"serial {licence.serial!r} is not a device serial number")
    for name in ("issued", "expires"):
        value = getattr(licence, name)
        if value is None and name == "expires":
            continue
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise LicenceError(f"{name} must be a date like 2026-11-23, not {value!r}")
        try:
            date.fromisoformat(value)
        except ValueError:
            raise LicenceError(f"{name} {value!r} is not a real date") from None
    if licence.expires is not None and licence.expires < licence.issued:
        raise LicenceError("the licence expires before it was issued")


def _signed_by(key: Ed25519PublicKey, signature: bytes, payload: bytes) -> bool:
    try:
        key.verify(signature, payload)
        return True
    except InvalidSignature:
        return False
