"""Sealing the secret part of a backup with the owner's passphrase: scrypt + AES-256-GCM.

The key is derived with scrypt (n=2^15, r=8, p=1: 32 MiB and about a tenth of a second
on a laptop, under a second on a Raspberry Pi 4) from the passphrase and a random
16-byte salt; AES-256-GCM with a random 96-bit nonce encrypts and authenticates. The
caller passes associated data (the backup's manifest without the sealed file), so the
passphrase also vouches for every plain file of the backup: changing any byte of them,
or of the sealed part, makes opening fail.

Opening takes the scrypt parameters from the file, so they are bounded first: a
crafted file must not make the box spend gigabytes or minutes (n at most 2^17, at
most 64 MiB).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from appliance.core.errors import InvalidConfig

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2 ** 15, 8, 1
MAX_N = 2 ** 17
MAX_MEMORY = 64 * 1024 * 1024  # scrypt needs 128 * n * r bytes
MIN_PASSPHRASE, MAX_PASSPHRASE = 10, 256
CIPHER = "AES-256-GCM"


class WrongPassphrase(InvalidConfig):
    """The passphrase does not open the sealed part (or the backup was changed)."""


def check_passphrase(passphrase: Any) -> str:
    if not isinstance(passphrase, str):
        raise InvalidConfig("the passphrase must be text")
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidConfig(f"the passphrase needs at least {MIN_PASSPHRASE} characters")
    if len(passphrase) > MAX_PASSPHRASE:
        raise InvalidConfig(f"the passphrase is longer than {MAX_PASSPHRASE} characters")
    return passphrase


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def seal(plaintext: bytes, passphrase: str, associated: bytes) -> tuple[bytes, dict[str, Any]]:
    """(ciphertext, parameters for the manifest)."""
    salt, nonce = os.urandom(16), os.urandom(12)
    key = _key(check_passphrase(passphrase), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    sealed = AESGCM(key).encrypt(nonce, plaintext, associated)
    params = {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
              "salt": base64.b64encode(salt).decode(), "cipher": CIPHER,
              "nonce": base64.b64encode(nonce).decode()}
    return sealed, params


def _b64(params: dict, name: str, size: int) -> bytes:
    try:
        raw = base64.b64decode(str(params.get(name, "")), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise InvalidConfig(f"the backup's encryption parameters are damaged ({name})")
    return raw


def open_sealed(sealed: bytes, passphrase: str, associated: bytes, params: Any) -> bytes:
    if not isinstance(params, dict) or params.get("kdf") != "scrypt" or \
            params.get("cipher") != CIPHER:
        raise InvalidConfig("the backup's secret part uses an encryption this box does not know")
    n, r, p = params.get("n"), params.get("r"), params.get("p")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (n, r, p)) or \
            not (2 <= n <= MAX_N and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 2
                 and 128 * n * r <= MAX_MEMORY):
        raise InvalidConfig("the backup's key derivation parameters are out of bounds")
    salt, nonce = _b64(params, "salt", 16), _b64(params, "nonce", 12)
    key = _key(check_passphrase(passphrase), salt, n, r, p)
    try:
        return AESGCM(key).decrypt(nonce, sealed, associated)
    except InvalidTag:
        raise WrongPassphrase("the passphrase is wrong, or the backup file was changed after "
                              "it was made") from None
