"""Vendor keys: generation (vendor side only) and loading of the public keys the
appliance trusts. The appliance ships only public keys, appliance/licensing/trusted/
<name>.pub; the board profile names which ones it trusts (`[licence] trusted_keys`), so
the development key (keys/dev/) is trusted by the simulated board only.
/etc/vigil/licence-keys/*.pub adds keys to an image without a code change."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from appliance.core.errors import InvalidConfig

SHIPPED = Path(__file__).resolve().parent / "trusted"
SYSTEM = Path("/etc/vigil/licence-keys")


def keygen(private_path: Path) -> Path:
    """A new vendor key pair: PEM private key (mode 0600) and `<name>.pub` beside it."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    public_path = Path(str(private_path) + ".pub")
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return public_path


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InvalidConfig(f"{path}: not a usable private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidConfig(f"{path}: not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise InvalidConfig(f"{path}: not a usable public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidConfig(f"{path}: not an Ed25519 public key")
    return key


def trusted_keys(names: list[str], system: Path = SYSTEM) -> list[Ed25519PublicKey]:
    keys = []
    for name in names:
        path = SHIPPED / f"{name}.pub"
        if not path.is_file():
            raise InvalidConfig(f"the board profile trusts licence key {name!r}, but "
                                f"{path} is not there")
        keys.append(load_public(path))
    if system.is_dir():
        keys += [load_public(p) for p in sorted(system.glob("*.pub"))]
    return keys
