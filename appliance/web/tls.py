"""The web server's certificate: generated on the device at first start, replaceable by
the owner's, always one file that the HTTPS server reloads by itself.

Why a device certificate: the box has no public name a CA could vouch for, so it makes
its own key and a self-signed certificate (ECDSA P-256: fast on a Pi and accepted by
every browser; browsers refuse Ed25519 certificates). The browser warns on the first
visit; the owner compares the SHA-256 fingerprint it shows with the one `nvr
web-certificate show` (or the web page, once trusted) reports. An owner-supplied
certificate (PEM chain + key) replaces it only after every check below passed; a bad
upload is refused with the reason and the certificate in force stays.

Files in `tls_dir` (0700, files 0600, each replaced atomically):

* `server.pem`: what the HTTPS server serves: a `Vigil-Source:` line, the private key,
  the chain (leaf first). One file, so key and certificate can never disagree, even for
  a connection that starts while a new one is written; OpenSSL skips the text line.
* `generated.pem`: the device's own certificate, kept while an owner certificate is
  served, so going back restores the fingerprint the owner already checked.

Lifetime: 10 years (docs/design/web-security.md): a self-signed certificate is trusted by
fingerprint, not by a CA; renewing it would change the fingerprint and train owners to
click through warnings, and a Pi without a clock battery is the last place to rely on a
renewal job. The key never leaves the box; "regenerate" makes a new one at any time.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import logging
import os
import re
import socket
import ssl
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.core.errors import InvalidConfig, Unavailable
from appliance.core.files import atomic_write

log = logging.getLogger(__name__)

SERVED = "server.pem"
GENERATED = "generated.pem"
SOURCE_LINE = re.compile(r"^Vigil-Source: (generated|owner)$", re.MULTILINE)
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]{1,64})-----\n.*?\n?-----END \1-----", re.DOTALL)

VALIDITY = dt.timedelta(days=3652)          # 10 years; see the module docstring
BACKDATE = dt.timedelta(days=1)             # a browser whose clock is a little behind
# A Pi has no clock battery: before NTP answers, the clock may say 1970 or the image's
# build day. A certificate made then must not expire soon after the clock is set.
CLOCK_FLOOR = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
RENEW_BEFORE = dt.timedelta(days=30)        # a kept generated certificate closer to its end
                                            # than this is replaced when restored

MAX_CERTIFICATE_BYTES = 64 * 1024           # a leaf and its intermediates, with room
MAX_KEY_BYTES = 16 * 1024                   # an RSA 8192 key in PEM is about 6.5 KiB
MAX_CHAIN = 8
RSA_BITS = (2048, 8192)                     # below: refused by OpenSSL and browsers;
                                            # above: handshakes too slow for a Pi
EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}  # what browsers negotiate
WEAK_SIGNATURES = ("md5", "sha1")

DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

# HSTS only while an owner certificate is served (docs/design/web-security.md): browsers
# ignore HSTS received over a connection with a certificate error (the generated one,
# before the owner trusts it), and a browser that did trust it would refuse the box
# outright, with no click-through, after a regenerate. With the owner's certificate from
# a CA they run or use, HSTS keeps a LAN attacker from downgrading the next visit. 30
# days bounds a lock-out by name (an expired owner certificate); HSTS never applies to
# IP addresses, so https://<the box's address>/ stays the way back in.
HSTS_MAX_AGE = 30 * 86400


def hsts_value(source: str) -> str | None:
    """The Strict-Transport-Security header for a served certificate of `source`."""
    return f"max-age={HSTS_MAX_AGE}" if source == "owner" else None


@dataclass(frozen=True)
class DeviceIdentity:
    """The names the generated certificate is for: the box's hostname and addresses."""
    hostname: str
    addresses: tuple[str, ...] = ()

    def dns_names(self) -> list[str]:
        name = self.hostname.strip().lower().rstrip(".")
        if not name or not all(DNS_LABEL.match(label) for label in name.split(".")):
            return []
        names = [name]
        if "." not in name:
            names.append(f"{name}.local")  # mDNS (avahi) name on the owner's LAN
        return names

    def ip_addresses(self) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        seen: list = []
        for text in (*self.addresses, "127.0.0.1", "::1"):
            address = ipaddress.ip_address(text.split("%")[0])
            if address not in seen:
                seen.append(address)
        return seen


def discover_identity() -> DeviceIdentity:
    """The hostname and the addresses of the up interfaces (no loopback, no link-local)."""
    import psutil

    addresses = []
    stats = psutil.net_if_stats()
    for name, entries in psutil.net_if_addrs().items():
        if name in stats and not stats[name].isup:
            continue
        for entry in entries:
            if entry.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            try:
                address = ipaddress.ip_address(entry.address.split("%")[0])
            except ValueError:
                continue
            if not (address.is_loopback or address.is_link_local or address.is_multicast):
                addresses.append(str(address))
    return DeviceIdentity(socket.gethostname(), tuple(sorted(set(addresses))))


@dataclass(frozen=True)
class CertificateStatus:
    """What the owner is shown: enough to compare with the browser's certificate viewer."""
    source: str                    # "generated" (self-signed on this box) or "owner"
    subject: str
    issuer: str
    self_signed: bool
    dns_names: list[str]
    ip_addresses: list[str]
    fingerprint_sha256: str        # of the leaf, AA:BB:... as browsers show it
    not_before: dt.datetime
    not_after: dt.datetime
    key: str                       # "ECDSA P-256", "RSA 2048"
    chain_length: int
    serial: str
    missing_names: list[str] = field(default_factory=list)  # of this box, not covered

    def days_left(self, now: dt.datetime | None = None) -> int:
        return (self.not_after - (now or _now())).days

    def to_json(self) -> dict:
        return {"source": self.source, "subject": self.subject, "issuer": self.issuer,
                "self_signed": self.self_signed, "dns_names": self.dns_names,
                "ip_addresses": self.ip_addresses,
                "fingerprint_sha256": self.fingerprint_sha256,
                "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(), "days_left": self.days_left(),
                "key": self.key, "chain_length": self.chain_length, "serial": self.serial,
                "missing_names": self.missing_names}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --- generation ---------------------------------------------------------------------------

def generate(identity: DeviceIdentity, now: dt.datetime | None = None) -> bytes:
    """A new key and self-signed certificate for this box, as the served file's bytes."""
    now = now or _now()
    key = ec.generate_private_key(ec.SECP256R1())
    dns = identity.dns_names()
    common_name = (dns[0] if dns else "vigil-nvr")[:64]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vigil NVR device")])
    sans = [x509.DNSName(n) for n in dns] + [x509.IPAddress(a) for a in identity.ip_addresses()]
    public = key.public_key()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(max(now, CLOCK_FLOOR) + VALIDITY)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256()))
    return _served_file("generated", key, [cert])


def _served_file(source: str, key, chain: list[x509.Certificate]) -> bytes:
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    certs = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    return f"Vigil-Source: {source}\n".encode() + key_pem + certs


# --- reading and describing ---------------------------------------------------------------

def pem_blocks(text: str) -> list[tuple[str, bytes]]:
    """(label, the whole block) for each PEM block; text around the blocks is ignored."""
    text = text.replace("\r\n", "\n")
    return [(m.group(1), m.group(0).encode("ascii")) for m in PEM_BLOCK.finditer(text)]


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def describe_key(key) -> str:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA {key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"ECDSA {EC_CURVES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PublicKey | ed448.Ed448PrivateKey):
        return "Ed448"
    if isinstance(key, dsa.DSAPublicKey | dsa.DSAPrivateKey):
        return f"DSA {key.key_size}"
    return type(key).__name__


def describe(source: str, chain: list[x509.Certificate],
             identity: DeviceIdentity | None = None) -> CertificateStatus:
    leaf = chain[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = san.get_values_for_type(x509.DNSName)
        ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns_names, ips = [], []
    missing: list[str] = []
    if identity is not None:
        missing = [n for n in identity.dns_names() if n not in dns_names] + \
            [str(a) for a in identity.ip_addresses() if str(a) not in ips]
    return CertificateStatus(
        source=source, subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(), self_signed=leaf.issuer == leaf.subject,
        dns_names=dns_names, ip_addresses=ips, fingerprint_sha256=fingerprint(leaf),
        not_before=leaf.not_valid_before_utc, not_after=leaf.not_valid_after_utc,
        key=describe_key(leaf.public_key()), chain_length=len(chain),
        serial=format(leaf.serial_number, "x"), missing_names=missing)


def read_served(path: Path) -> tuple[str, list[x509.Certificate]]:
    """(source, chain) of a file this module wrote; InvalidConfig if it is damaged."""
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidConfig(f"{path}: cannot read the certificate ({exc})") from None
    found = SOURCE_LINE.search(text)
    certs = [x509.load_pem_x509_certificate(b) for label, b in pem_blocks(text)
             if label == "CERTIFICATE"]
    if not certs:
        raise InvalidConfig(f"{path}: no certificate in it")
    return (found.group(1) if found else "owner"), certs


# --- the owner's certificate: every check before it replaces anything ---------------------

@dataclass(frozen=True)
class OwnerCertificate:
    key: object
    chain: list[x509.Certificate]


def check_owner_certificate(certificate: str, key: str, passphrase: str | None = None,
                            now: dt.datetime | None = None) -> OwnerCertificate:
    """The owner's PEM chain and key, if the server can serve them; else InvalidConfig
    with a reason the owner can act on (nothing secret is quoted back)."""
    now = now or _now()
    if not isinstance(certificate, str) or not isinstance(key, str):
        raise InvalidConfig("give the certificate and the private key as PEM text")
    if len(certificate.encode()) > MAX_CERTIFICATE_BYTES:
        raise InvalidConfig(f"the certificate is larger than {MAX_CERTIFICATE_BYTES // 1024} KiB:"
                            " give the server certificate and its intermediates only")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise InvalidConfig(f"the private key is larger than {MAX_KEY_BYTES // 1024} KiB")
    chain = _parse_chain(certificate)
    private = _parse_key(key, passphrase)
    leaf = chain[0]
    _check_key_type(private)
    if _public_der(private.public_key()) != _public_der(leaf.public_key()):
        raise InvalidConfig("the private key does not belong to the certificate (the first "
                            "certificate must be the server's own, matching the key)")
    for number, cert in enumerate(chain, 1):
        what = "the certificate" if number == 1 else f"certificate {number} of the chain"
        if now < cert.not_valid_before_utc:
            raise InvalidConfig(f"{what} is not valid yet: valid from "
                                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC (this box's "
                                f"clock says {now:%Y-%m-%d %H:%M} UTC)")
        if now > cert.not_valid_after_utc:
            raise InvalidConfig(f"{what} expired on {cert.not_valid_after_utc:%Y-%m-%d} "
                                f"(this box's clock says {now:%Y-%m-%d})")
    algorithm = leaf.signature_hash_algorithm
    if algorithm is not None and algorithm.name in WEAK_SIGNATURES and \
            leaf.issuer != leaf.subject:
        raise InvalidConfig(f"the certificate is signed with {algorithm.name.upper()}, which "
                            "browsers refuse")
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.SERVER_AUTH not in usage:
            raise InvalidConfig("the certificate is not for TLS servers (its extended key "
                                "usage lacks serverAuth)")
    except x509.ExtensionNotFound:
        pass
    for number in range(1, len(chain)):
        child, parent = chain[number - 1], chain[number]
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            raise InvalidConfig(f"certificate {number + 1} of the chain did not issue "
                                f"certificate {number}: give the server certificate first, "
                                "then each issuer in order") from None
    return OwnerCertificate(private, chain)


def _parse_chain(text: str) -> list[x509.Certificate]:
    blocks = pem_blocks(text)
    if not blocks:
        raise InvalidConfig("the certificate is not PEM text (it must start with -----BEGIN "
                            "CERTIFICATE-----; convert a DER file with openssl x509)")
    labels = [label for label, _ in blocks]
    if any("PRIVATE KEY" in label for label in labels):
        raise InvalidConfig("the certificate field holds a private key: put the key in the "
                            "key field and the certificate in the certificate field")
    others = sorted({label for label in labels if label != "CERTIFICATE"})
    if others:
        raise InvalidConfig(f"the certificate field holds a {others[0]}, not a certificate")
    if len(blocks) > MAX_CHAIN:
        raise InvalidConfig(f"more than {MAX_CHAIN} certificates: give the server certificate "
                            "and its intermediates only")
    chain = []
    for number, (_, block) in enumerate(blocks, 1):
        try:
            chain.append(x509.load_pem_x509_certificate(block))
        except ValueError:
            raise InvalidConfig(f"certificate {number} cannot be read (damaged PEM)") from None
    return chain


def _parse_key(text: str, passphrase: str | None):
    blocks = pem_blocks(text)
    if not blocks:
        raise InvalidConfig("a certificate without its private key cannot be served: give "
                            "the private key (PEM, -----BEGIN PRIVATE KEY-----) too")
    keys = [(label, block) for label, block in blocks if "PRIVATE KEY" in label]
    if not keys:
        raise InvalidConfig(f"the key field holds a {blocks[0][0]}, not a private key")
    if len(keys) > 1:
        raise InvalidConfig("the key field holds more than one private key")
    label, block = keys[0]
    encrypted = label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block
    if encrypted and not passphrase:
        raise InvalidConfig("the private key is encrypted: give its passphrase too (the key "
                            "is then stored decrypted, readable by the web server only)")
    try:
        return serialization.load_pem_private_key(
            block, password=passphrase.encode() if encrypted else None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        if encrypted:
            raise InvalidConfig("the passphrase does not open the private key") from None
        raise InvalidConfig("the private key cannot be read (damaged PEM or an unsupported "
                            "key type)") from None


def _check_key_type(key) -> None:
    if isinstance(key, rsa.RSAPrivateKey):
        low, high = RSA_BITS
        if not low <= key.key_size <= high:
            raise InvalidConfig(f"an RSA key must have {low} to {high} bits (this one has "
                                f"{key.key_size})")
        return
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in EC_CURVES:
            raise InvalidConfig(f"the elliptic curve {key.curve.name} is not one browsers "
                                "accept: use P-256 or P-384")
        return
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raise InvalidConfig(f"browsers do not accept {describe_key(key)} certificates: use "
                            "ECDSA P-256 or RSA")
    raise InvalidConfig(f"{describe_key(key)} keys cannot be used: use ECDSA P-256 or RSA")


def _public_der(public) -> bytes:
    return public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


# --- the store ----------------------------------------------------------------------------

class TlsStore:
    """The certificate files in one directory; every change under a lock, atomic."""

    def __init__(self, tls_dir: Path, now: Callable[[], dt.datetime] = _now) -> None:
        self.dir = Path(tls_dir)
        self.now = now

    @property
    def served_path(self) -> Path:
        return self.dir / SERVED

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One change at a time (the server, the API and the command line may race)."""
        try:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(self.dir / ".lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        except OSError as exc:
            raise Unavailable(f"{self.dir}: cannot write the certificate "
                              f"({exc.strerror or exc})") from None

    def _write(self, name: str, data: bytes) -> None:
        atomic_write(self.dir / name, data, mode=0o600)
        owner = self.dir.stat()
        if os.geteuid() == 0 and owner.st_uid != 0:
            # `nvr web-certificate` run as root: the web server's user must still read it.
            os.chown(self.dir / name, owner.st_uid, owner.st_gid)

    def ensure(self, identity: DeviceIdentity) -> CertificateStatus:
        """At start: the served certificate, made now if there is none. A damaged file is
        kept aside and replaced (the web page is the only way in; it must come up)."""
        with self._locked():
            if self.served_path.exists():
                try:
                    read_served(self.served_path)
                    _load_for_tls(self.served_path)
                except (InvalidConfig, ssl.SSLError, ValueError) as exc:
                    aside = self.dir / f"{SERVED}.damaged"
                    os.replace(self.served_path, aside)
                    log.error("tls: %s; kept as %s, serving a generated certificate", exc, aside)
            if not self.served_path.exists():
                self._write(SERVED, self._generated(identity, fresh=False))
                log.info("tls: serving the device's own certificate (%s)", self.dir)
        return self.status(identity)

    def status(self, identity: DeviceIdentity | None = None) -> CertificateStatus:
        source, chain = read_served(self.served_path)
        return describe(source, chain, identity)

    def install(self, certificate: str, key: str, passphrase: str | None = None,
                identity: DeviceIdentity | None = None) -> CertificateStatus:
        """Serve the owner's certificate; refused (InvalidConfig) and nothing changed unless
        every check passes, including OpenSSL loading it as the server will."""
        owner = check_owner_certificate(certificate, key, passphrase, self.now())
        data = _served_file("owner", owner.key, owner.chain)
        with self._locked():
            trial = self.dir / ".trial.pem"
            try:
                atomic_write(trial, data, mode=0o600, durable=False)
                _load_for_tls(trial)
            except ssl.SSLError as exc:
                raise InvalidConfig(f"the TLS library refuses this certificate and key "
                                    f"({exc.reason or exc})") from None
            finally:
                trial.unlink(missing_ok=True)
            if not (self.dir / GENERATED).exists() and self.served_path.exists():
                source, _ = read_served(self.served_path)
                if source == "generated":  # keep the device's own for going back
                    self._write(GENERATED, self.served_path.read_bytes())
            self._write(SERVED, data)
        return self.status(identity)

    def use_generated(self, identity: DeviceIdentity, fresh: bool = False) -> CertificateStatus:
        """Back to the device's own certificate: the kept one (same fingerprint as before),
        or a new key and certificate when `fresh` or when the kept one is near its end."""
        with self._locked():
            self._write(SERVED, self._generated(identity, fresh))
        return self.status(identity)

    def _generated(self, identity: DeviceIdentity, fresh: bool) -> bytes:
        """The kept generated certificate, or a new one (also kept); under the lock."""
        kept = self.dir / GENERATED
        if not fresh and kept.exists():
            try:
                source, chain = read_served(kept)
                if source == "generated" and \
                        chain[0].not_valid_after_utc - self.now() > RENEW_BEFORE:
                    return kept.read_bytes()
            except InvalidConfig as exc:
                log.warning("tls: the kept generated certificate is unusable: %s", exc)
        data = generate(identity, self.now())
        self._write(GENERATED, data)
        return data


def _load_for_tls(path: Path) -> ssl.SSLContext:
    """An SSLContext for serving `path` (key and chain in one file), as the server makes it."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(path))
    return context


server_context = _load_for_tls  # the HTTPS server builds its context the same way
