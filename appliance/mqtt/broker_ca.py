"""The owner's broker CA, uploaded as PEM text (the Integrations page) instead of a file
put on the box by hand: checked, then kept beside mqtt.json as `mqtt-ca-<hash>.pem`.

The name carries the content's hash: vigil-mqtt re-reads its settings when mqtt.json
changes, and a new CA is a new `ca_file` value there, so the daemon reconnects with it
(a file replaced under the same name would be picked up only at the next reconnect).
Files of earlier uploads are removed once the settings no longer name them.

What is accepted: at most MAX_CA_BYTES of PEM with one or more CERTIFICATE blocks and
nothing else (a private key pasted by mistake is refused, not stored), each block a
certificate OpenSSL loads as a trust anchor.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from appliance.core.errors import InvalidConfig
from appliance.core.files import atomic_write

MAX_CA_BYTES = 64 * 1024
PREFIX, SUFFIX = "mqtt-ca-", ".pem"
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)


@dataclass(frozen=True)
class BrokerCa:
    """The checked PEM and what the page shows of it."""
    pem: bytes
    subjects: tuple[str, ...]
    not_after: str                 # the earliest expiry among the certificates, ISO date

    @property
    def file_name(self) -> str:
        return f"{PREFIX}{hashlib.sha256(self.pem).hexdigest()[:16]}{SUFFIX}"


def check_ca_pem(text: object) -> BrokerCa:
    """The owner's CA certificate(s) as PEM text, or a clear InvalidConfig."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidConfig("ca_certificate: give the PEM text of the CA certificate that "
                            "signed the broker's certificate")
    data = text.encode("utf-8", "replace")
    if len(data) > MAX_CA_BYTES:
        raise InvalidConfig(f"ca_certificate: {len(data) // 1024} KiB is too large for CA "
                            f"certificates (at most {MAX_CA_BYTES // 1024} KiB)")
    blocks = PEM_BLOCK.findall(text)
    kinds = sorted({kind for kind, _ in blocks} - {"CERTIFICATE"})
    if kinds:
        raise InvalidConfig(f"ca_certificate: holds a {kinds[0].lower()}; give only the CA "
                            "certificate (never a private key)")
    if not blocks:
        raise InvalidConfig("ca_certificate: no PEM certificate (-----BEGIN CERTIFICATE-----) "
                            "in it")
    pem = "".join(f"-----BEGIN CERTIFICATE-----\n{body.strip()}\n-----END CERTIFICATE-----\n"
                  for _, body in blocks).encode()
    try:
        certs = x509.load_pem_x509_certificates(pem)
        ssl.create_default_context(cadata=pem.decode())
    except (ValueError, ssl.SSLError) as exc:
        raise InvalidConfig(f"ca_certificate: a certificate in it cannot be read ({exc})") \
            from None
    not_after = min(c.not_valid_after_utc for c in certs)
    return BrokerCa(pem, tuple(c.subject.rfc4514_string() for c in certs),
                    not_after.date().isoformat())


def save_ca(config_dir: Path, ca: BrokerCa) -> Path:
    """Write the checked CA beside the settings (readable by vigil-mqtt); its path."""
    path = Path(config_dir) / ca.file_name
    atomic_write(path, ca.pem, mode=0o644)
    return path


def is_uploaded(config_dir: Path, ca_file: str) -> bool:
    """Is `ca_file` one of the files this module keeps (not one put there by hand)?"""
    path = Path(ca_file)
    return path.parent == Path(config_dir) and path.name.startswith(PREFIX) and \
        path.name.endswith(SUFFIX)


def remove_unused(config_dir: Path, keep: str) -> list[str]:
    """Delete uploaded CA files other than `keep` (the one the settings name, or "")."""
    removed = []
    for path in Path(config_dir).glob(f"{PREFIX}*{SUFFIX}"):
        if str(path) != keep:
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed


def describe_file(ca_file: str) -> dict | None:
    """What the page shows of the CA in use: subjects and expiry; None if unreadable."""
    try:
        with open(ca_file, "rb") as handle:    # bounded: a technician's path may be anything
            text = handle.read(MAX_CA_BYTES + 1).decode("utf-8", "replace")
        ca = check_ca_pem(text)
    except (OSError, InvalidConfig):
        return None
    return {"subjects": list(ca.subjects), "not_after": ca.not_after}
