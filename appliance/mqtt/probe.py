"""A connection test to a broker, for the owner's form: does this broker, port, TLS and
login work, and if not, which step failed and why, in words.

The steps: the address (the same guard as for cameras: the box's own networks only,
never link-local or cloud metadata addresses, never the box's own services), TCP,
TLS (the certificate and the broker's name verified, as the daemon does), and MQTT's
CONNECT with the login, whose CONNACK says whether the broker takes it. Then DISCONNECT:
nothing is published.

The CONNECT is written here (MQTT 3.1.1, a few dozen bytes) rather than through paho:
paho resolves the name and connects by itself, and this test must connect to the
address the guard checked and to no other (a DNS answer that changes in between must
not move it: DNS rebinding), and must give up at one deadline for every step.
"""

from __future__ import annotations

import os
import secrets
import socket
import ssl
import stat
import time
from dataclasses import dataclass

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif.policy import AddressPolicy
from appliance.core.errors import InvalidConfig, Unavailable
from appliance.mqtt.settings import MqttSettings

MAX_CA_BYTES = 1024 * 1024
TIMEOUT = 5.0          # for the whole test, resolving apart (the guard's own 2 s)
PROTOCOL_LEVEL = 4     # MQTT 3.1.1, what the daemon speaks
KEEPALIVE_S = 30
DISCONNECT = b"\xe0\x00"
CONNACK_WORDS = {
    1: "the broker does not accept MQTT 3.1.1",
    2: "the broker refused the client id",
    3: "the broker says it is unavailable",
    4: "the broker refused the user name or password",
    5: "the broker refused this login (not authorised: check the user name, the "
       "password and the broker's access rules)",
}


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    step: str          # where it ended: resolve, connect, tls, mqtt, or done
    message: str
    address: str | None = None   # the IP address that was contacted

    def to_json(self) -> dict:
        return {"ok": self.ok, "step": self.step, "message": self.message,
                "address": self.address}


def tls_context(ca_file: str) -> ssl.SSLContext:
    """As the daemon's (appliance/mqtt/publisher.py): the certificate and name checked."""
    if ca_file:
        check_ca_file(ca_file)
    try:
        return ssl.create_default_context(cafile=ca_file or None)
    except (OSError, ssl.SSLError) as exc:
        raise InvalidConfig(f"ca_file {ca_file[:200]}: not a PEM file of CA certificates "
                            f"({getattr(exc, 'strerror', None) or exc})") from None


def check_ca_file(ca_file: str) -> None:
    """A regular file of at most MAX_CA_BYTES that this process can read (the web server
    checks as the user vigil-mqtt runs as): a device or a FIFO would be read forever."""
    try:
        st = os.stat(ca_file)
        readable = os.access(ca_file, os.R_OK)
    except (OSError, ValueError) as exc:
        raise InvalidConfig(f"ca_file {ca_file[:200]!r}: cannot be read "
                            f"({getattr(exc, 'strerror', None) or exc})") from None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_CA_BYTES or not readable:
        raise InvalidConfig(f"ca_file {ca_file[:200]!r}: give a readable PEM file of CA "
                            f"certificates (at most {MAX_CA_BYTES // 1024} KiB)")


def _utf8(text: str) -> bytes:
    data = text.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


def _remaining_length(length: int) -> bytes:
    """MQTT's variable byte integer: 7 bits a byte, the high bit says "more"."""
    out = bytearray()
    while True:
        byte, length = length % 128, length // 128
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def connect_packet(client_id: str, credentials: Credentials | None) -> bytes:
    """CONNECT with a clean session, and the user name and password when given."""
    flags = 0x02
    payload = _utf8(client_id)
    if credentials is not None:
        flags |= 0x80 | 0x40
        payload += _utf8(credentials.username) + _utf8(credentials.password)
    body = _utf8("MQTT") + bytes([PROTOCOL_LEVEL, flags]) + \
        KEEPALIVE_S.to_bytes(2, "big") + payload
    return b"\x10" + _remaining_length(len(body)) + body


def connack_result(answer: bytes) -> tuple[bool, str]:
    """(accepted, words) for the broker's first four bytes."""
    if len(answer) < 4 or answer[0] != 0x20 or answer[1] != 0x02:
        return False, "something answered, but not as an MQTT broker (is this the broker's port?)"
    code = answer[3]
    if code == 0:
        return True, "the broker accepted the connection"
    return False, CONNACK_WORDS.get(code, f"the broker refused the connection (code {code})")


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline")
        return left


def _read_connack(sock: socket.socket, deadline: _Deadline) -> bytes:
    data = b""
    while len(data) < 4:
        sock.settimeout(deadline.left())
        chunk = sock.recv(4 - len(data))
        if not chunk:
            break
        data += chunk
    return data


def probe_broker(settings: MqttSettings, credentials: Credentials | None,
                 policy: AddressPolicy, timeout: float = TIMEOUT) -> ProbeResult:
    """Try the broker once. InvalidConfig (400 at the web) when the address may not be
    contacted or the CA file cannot be read; every other failure is a result."""
    port = settings.effective_port
    context = tls_context(settings.ca_file) if settings.tls else None
    try:
        ip = str(policy.check_host(settings.host, port))
    except Unavailable as exc:
        return ProbeResult(False, "resolve", str(exc))
    where = f"{ip}:{port}"
    session = _Session(ip, port, _Deadline(timeout))
    try:
        accepted, words = session.run(settings.host, context, credentials)
        return ProbeResult(accepted, "done" if accepted else "mqtt", words, ip)
    except ssl.SSLCertVerificationError as exc:
        return ProbeResult(False, "tls", f"the broker's certificate is not trusted "
                           f"({exc.verify_message}): give the CA that signed it, or check "
                           "the broker's name", ip)
    except ssl.SSLError as exc:
        return ProbeResult(False, "tls", f"TLS with {where} failed ({exc.reason or exc}): "
                           "does the broker use TLS on this port?", ip)
    except ConnectionRefusedError:
        return ProbeResult(False, session.step, f"nothing accepts connections on {where} "
                           "(is the broker running, is the port right?)", ip)
    except socket.timeout:
        return ProbeResult(False, session.step, f"no answer from {where} within "
                           f"{timeout:g} s (a firewall, or the wrong address)", ip)
    except OSError as exc:   # a broker without TLS drops a TLS hello: a reset, an EOF
        hint = " (does the broker use TLS on this port?)" if session.step == "tls" else ""
        return ProbeResult(False, session.step, f"{where}: {exc.strerror or exc}{hint}", ip)
    finally:
        session.close()


class _Session:
    """One connection to the checked address; `step` says how far it got."""

    def __init__(self, ip: str, port: int, deadline: _Deadline) -> None:
        self.ip, self.port, self.deadline = ip, port, deadline
        self.step = "connect"
        self._sockets: list[socket.socket] = []

    def run(self, host: str, context: ssl.SSLContext | None,
            credentials: Credentials | None) -> tuple[bool, str]:
        sock = socket.create_connection((self.ip, self.port), timeout=self.deadline.left())
        self._sockets.append(sock)
        if context is not None:
            self.step = "tls"
            sock = context.wrap_socket(sock, server_hostname=host)
            self._sockets.append(sock)
        self.step = "mqtt"
        sock.settimeout(self.deadline.left())
        sock.sendall(connect_packet(f"vigil-test-{secrets.token_hex(4)}", credentials))
        accepted, words = connack_result(_read_connack(sock, self.deadline))
        if accepted:
            sock.sendall(DISCONNECT)
        return accepted, words

    def close(self) -> None:
        for sock in reversed(self._sockets):
            sock.close()
