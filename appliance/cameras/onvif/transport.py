"""Bounded HTTP for talking to cameras: every request has a deadline and a size limit.

* The URL passes the AddressPolicy first; the connection goes to the checked IP address
  (the Host header and TLS server name keep the host name).
* Connect, each read, and the whole request have their own limits (`Timeouts`). A
  watchdog shuts the socket down at the total deadline, so a camera that trickles one
  header line every few seconds cannot hold a request open either.
* The body is read in 64 KiB steps and refused past `max_bytes` (a declared
  Content-Length above it is refused before reading anything): a 100 MB answer costs
  at most `max_bytes` of memory.
* Redirects are followed only to the same host and port, re-checked by the policy, at most
  twice; anything else is refused and not contacted.
* On a 401 with an HTTP Digest challenge (some cameras want it on top of or instead of
  WS-Security) the request is repeated once with Digest credentials (RFC 7616, MD5 or
  SHA-256, qop=auth). Basic is never sent: it would put the password on the wire.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin

from appliance.cameras.credentials import Credentials
from appliance.cameras.onvif.policy import AddressPolicy, AddressRefused, Target
from appliance.cameras.onvif.soap import MAX_XML_BYTES, BadResponse
from appliance.core.errors import Unavailable

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024
MAX_REDIRECTS = 2
USER_AGENT = "vigil-nvr-onvif/1"


@dataclass(frozen=True)
class Timeouts:
    connect: float = 3.0   # TCP (and TLS) connection
    read: float = 5.0      # silence between two reads
    total: float = 10.0    # the whole request, redirects and digest retry included

    def within(self, remaining: float) -> "Timeouts":
        """These limits, cut to what is left of an overall deadline."""
        remaining = max(0.05, remaining)
        return Timeouts(min(self.connect, remaining), min(self.read, remaining),
                        min(self.total, remaining))


class CameraUnreachable(Unavailable):
    """Nothing answered, or not in time; retry later."""


@dataclass(frozen=True)
class HttpResponse:
    status: int
    reason: str
    headers: dict[str, str]   # lower-case names; repeated headers joined with ", "
    body: bytes
    url: str                  # the URL that answered (after redirects)


class _PinnedConnection(http.client.HTTPConnection):
    """Connects to the checked IP address; the Host header keeps the URL's host."""

    def __init__(self, target: Target, timeouts: Timeouts, ssl_context: ssl.SSLContext | None,
                 on_socket) -> None:  # noqa: ANN001
        super().__init__(target.host, target.port, timeout=timeouts.read)
        self._target = target
        self._timeouts = timeouts
        self._ssl_context = ssl_context
        self._on_socket = on_socket

    def connect(self) -> None:
        sock = socket.create_connection((str(self._target.ip), self._target.port),
                                        timeout=self._timeouts.connect)
        self._on_socket(sock)
        if self._target.scheme == "https":
            context = self._ssl_context or camera_ssl_context()
            server_name = None if _is_ip(self._target.host) else self._target.host
            sock = context.wrap_socket(sock, server_hostname=server_name)
            self._on_socket(sock)
        sock.settimeout(self._timeouts.read)
        self.sock = sock


def camera_ssl_context() -> ssl.SSLContext:
    """TLS for ONVIF over HTTPS. Cameras ship self-signed certificates with no name we
    could check, so the certificate is not verified (docs/design/onvif.md, caveats):
    HTTPS here protects against passive listeners, WS-Security keeps the password off
    the wire either way."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        return True
    except OSError:
        return False


class _Watchdog:
    """Shuts the request's socket down when the total deadline passes."""

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.fired:
                self._shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            for sock in self._sockets:
                self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            # The plain-socket shutdown, also for an SSLSocket: wakes a blocked read
            # without touching the TLS state from this thread.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()


def request(method: str, url: str, policy: AddressPolicy, *, body: bytes = b"",
            headers: dict[str, str] | None = None, timeouts: Timeouts = Timeouts(),
            max_bytes: int = MAX_XML_BYTES, kind: str = "onvif",
            credentials: Credentials | None = None,
            ssl_context: ssl.SSLContext | None = None) -> HttpResponse:
    """One HTTP exchange with a camera, within `timeouts.total` from start to finish.

    Raises AddressRefused (nothing was sent), CameraUnreachable (refused, reset, timed
    out) or BadResponse (too large, malformed HTTP). Returns any HTTP status; the caller
    decides what a 4xx or 5xx means."""
    start = time.monotonic()
    deadline = start + timeouts.total
    target = policy.check_url(url, kind, resolve_timeout=min(timeouts.connect, timeouts.total))
    digest: _DigestChallenge | None = None
    redirects = 0
    while True:
        extra = dict(headers or {})
        if digest is not None and credentials is not None:
            extra["Authorization"] = digest.authorization(method, target.path, credentials)
        response = _exchange(method, target, body, extra, timeouts, deadline, max_bytes,
                             ssl_context)
        if response.status in (301, 302, 303, 307, 308) and "location" in response.headers:
            redirects += 1
            target = _redirect_target(target, response.headers["location"], policy, kind,
                                      redirects, timeouts)
            continue
        if (response.status == 401 and digest is None and credentials is not None
                and credentials.username):
            digest = _DigestChallenge.parse(response.headers.get("www-authenticate", ""))
            if digest is not None:
                log.debug("http digest retry url=%s", target.url)
                continue
        log.debug("http %s url=%s status=%d bytes=%d ms=%d", method, target.url,
                  response.status, len(response.body), (time.monotonic() - start) * 1000)
        return response


def _redirect_target(current: Target, location: str, policy: AddressPolicy, kind: str,
                     count: int, timeouts: Timeouts) -> Target:
    new_url = urljoin(f"{current.scheme}://{current.netloc}{current.path}", location.strip())
    if count > MAX_REDIRECTS:
        raise BadResponse(f"{current.url} redirected more than {MAX_REDIRECTS} times")
    target = policy.check_url(new_url, kind, resolve_timeout=timeouts.connect)
    if target.host.lower() != current.host.lower() or target.ip != current.ip:
        raise AddressRefused(f"{current.url} redirected to another host ({target.url}); "
                             "redirects to other hosts are never followed")
    return target


def _exchange(method: str, target: Target, body: bytes, headers: dict[str, str],
              timeouts: Timeouts, deadline: float, max_bytes: int,
              ssl_context: ssl.SSLContext | None) -> HttpResponse:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise CameraUnreachable(f"{target.url} did not answer within {timeouts.total:g} s")
    watchdog = _Watchdog(remaining)
    conn = _PinnedConnection(target, timeouts.within(remaining), ssl_context, watchdog.watch)
    try:
        conn.putrequest(method, target.path, skip_accept_encoding=True)
        for name, value in {"User-Agent": USER_AGENT, "Connection": "close",
                            "Content-Length": str(len(body)), **headers}.items():
            conn.putheader(name, value)
        conn.endheaders(body if body else None)
        resp = conn.getresponse()
        declared = resp.getheader("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > max_bytes:
            raise BadResponse(f"{target.url} announced {int(declared)} bytes; the limit is "
                              f"{max_bytes} (nothing was read)")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = resp.read(READ_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise BadResponse(f"{target.url} sent more than {max_bytes} bytes; the rest "
                                  "was not read")
            chunks.append(chunk)
        if watchdog.fired:  # the shutdown looks like a normal end of the answer
            raise CameraUnreachable(_late(target, timeouts, watchdog))
        headers_out: dict[str, str] = {}
        for name, value in resp.getheaders():
            key = name.lower()
            headers_out[key] = f"{headers_out[key]}, {value}" if key in headers_out else value
        return HttpResponse(resp.status, resp.reason, headers_out, b"".join(chunks), target.url)
    except (BadResponse, CameraUnreachable):
        if watchdog.fired:
            raise CameraUnreachable(_late(target, timeouts, watchdog)) from None
        raise
    except (socket.timeout, TimeoutError):
        raise CameraUnreachable(_late(target, timeouts, watchdog)) from None
    except ConnectionRefusedError:
        raise CameraUnreachable(f"{target.url}: connection refused (nothing listens on port "
                                f"{target.port})") from None
    except ssl.SSLError as exc:
        if watchdog.fired:
            raise CameraUnreachable(_late(target, timeouts, watchdog)) from None
        raise CameraUnreachable(f"{target.url}: TLS failed ({exc.reason or exc})") from None
    except (http.client.HTTPException, OSError) as exc:
        if watchdog.fired:
            raise CameraUnreachable(_late(target, timeouts, watchdog)) from None
        if isinstance(exc, (http.client.LineTooLong, http.client.BadStatusLine)) or \
                "got more than" in str(exc):
            raise BadResponse(f"{target.url} sent a malformed HTTP answer "
                              f"({type(exc).__name__})") from None
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise CameraUnreachable(f"{target.url}: {detail}") from None
    finally:
        watchdog.cancel()
        conn.close()


def _late(target: Target, timeouts: Timeouts, watchdog: _Watchdog) -> str:
    if watchdog.fired:
        return f"{target.url} did not finish answering within {timeouts.total:g} s"
    return f"{target.url} did not answer within {timeouts.read:g} s"


_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class _DigestChallenge:
    realm: str
    nonce: str
    opaque: str | None
    algorithm: str
    qop: str | None

    @classmethod
    def parse(cls, header: str) -> "_DigestChallenge | None":
        match = re.search(r"\bDigest\s+(.*)", header, re.IGNORECASE | re.DOTALL)
        if not match:
            return None
        params = {k.lower(): (q if q is not None and q != "" else u) or ""
                  for k, q, u in _PARAM.findall(match.group(1)[:4096])}
        algorithm = params.get("algorithm", "MD5").upper()
        if "nonce" not in params or algorithm not in ("MD5", "SHA-256"):
            return None
        qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
        if qops and "auth" not in qops:
            return None
        return cls(params.get("realm", ""), params["nonce"], params.get("opaque"), algorithm,
                   "auth" if qops else None)

    def authorization(self, method: str, uri: str, creds: Credentials) -> str:
        def h(text: str) -> str:
            algo = hashlib.sha256 if self.algorithm == "SHA-256" else hashlib.md5
            return algo(text.encode("utf-8")).hexdigest()

        ha1 = h(f"{creds.username}:{self.realm}:{creds.password}")
        ha2 = h(f"{method}:{uri}")
        parts = [f'username="{_quote(creds.username)}"', f'realm="{_quote(self.realm)}"',
                 f'nonce="{_quote(self.nonce)}"', f'uri="{_quote(uri)}"',
                 f"algorithm={self.algorithm}"]
        if self.qop:
            cnonce = secrets.token_hex(8)
            nc = "00000001"
            response = h(f"{ha1}:{self.nonce}:{nc}:{cnonce}:auth:{ha2}")
            parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = h(f"{ha1}:{self.nonce}:{ha2}")
        parts.append(f'response="{response}"')
        if self.opaque is not None:
            parts.append(f'opaque="{_quote(self.opaque)}"')
        return "Digest " + ", ".join(parts)


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
