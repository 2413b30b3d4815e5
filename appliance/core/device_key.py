"""The box's own Ed25519 key: it signs what the box vouches for (export manifests).

Generated once, at first use, on the persist partition: PKCS#8 PEM, mode 0600, in a
directory of mode 0700 (default /persist/keys/device.pem; the path is always passed in,
so tests and development use their own). Creation is atomic and never overwrites: the
key is written to a temporary file and hard-linked into place, so two processes starting
at once end up with the same key.

The fingerprint is what a person compares between the box's screen and an export:
the first 16 hex digits of SHA-256 of the raw 32-byte public key, in groups of four
(`3f2a-9c1b-77de-0a45`). 64 bits: forging a key with a chosen fingerprint costs about
2^64 key generations; the full public key is carried beside it for a stronger check.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.core.errors import DataLoss, FailedPrecondition, InvalidConfig
from appliance.core.files import fsync_dir

log = logging.getLogger(__name__)

DEFAULT_PATH = Path("/persist/keys/device.pem")
FINGERPRINT_HEX = 16


def fingerprint(public_raw: bytes) -> str:
    """`xxxx-xxxx-xxxx-xxxx`: the first 16 hex digits of SHA-256 of the raw public key."""
    digest = hashlib.sha256(public_raw).hexdigest()[:FINGERPRINT_HEX]
    return "-".join(digest[i:i + 4] for i in range(0, FINGERPRINT_HEX, 4))


def normalise_fingerprint(text: str) -> str:
    """What a person typed (any case, spaces, colons or dashes) in the canonical form."""
    digits = "".join(ch for ch in text.lower() if ch in "0123456789abcdef")
    return "-".join(digits[i:i + 4] for i in range(0, len(digits), 4))


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """A raw 32-byte Ed25519 public key in base64 (as export manifests carry it)."""
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidConfig(f"not an Ed25519 public key in base64 ({exc})") from None


def verify(public: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        public.verify(signature, data)
    except InvalidSignature:
        return False
    return True


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class DeviceKey:
    path: Path
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_raw(self) -> bytes:
        return raw_public(self.public_key)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode("ascii")

    @property
    def public_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)


def load_or_create(path: Path = DEFAULT_PATH) -> DeviceKey:
    """The device key at `path`, generated there first if there is none."""
    path = Path(path)
    _private_dir(path.parent)
    if not path.exists():
        _create(path)
    return DeviceKey(path, _load(path))


def _private_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = stat.S_IMODE(directory.stat().st_mode)
        if mode & 0o077:
            os.chmod(directory, 0o700)
            log.warning("key directory %s had mode %o; set to 0700", directory, mode)
    except OSError as exc:
        raise FailedPrecondition(f"the device key directory {directory} cannot be used "
                                 f"({exc.strerror or exc})") from None


def _create(path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process made
        except FileExistsError:
            return
        fsync_dir(path.parent)
        log.info("generated the device key %s (fingerprint %s)", path,
                 fingerprint(raw_public(key.public_key())))
    except OSError as exc:
        raise FailedPrecondition(f"cannot create the device key {path} "
                                 f"({exc.strerror or exc})") from None
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("device key %s had mode %o; set to 0600", path, mode)
        data = path.read_bytes()
    except OSError as exc:
        raise FailedPrecondition(f"cannot read the device key {path} "
                                 f"({exc.strerror or exc})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise DataLoss(f"the device key {path} is damaged ({exc}); it is left in place "
                       "(exports signed with it stay verifiable by its public key)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DataLoss(f"the device key {path} is not an Ed25519 key")
    return key


