"""The box's end of ONVIF basic notification: a small HTTP server in the recorder process
that cameras without PullPoint push their wsnt:Notify messages to.

It listens only while at least one subscription needs it (the first `receiving()` opens
the listener, the last one to end closes it), on the box's camera-side address and a
dedicated port (ReceiverSettings; 8086 by default). Each subscription gets its own path,
`/onvif-events/<token>` with a 256-bit `secrets.token_urlsafe` token: that token is what
authenticates the camera (it is only ever sent to the camera, in the Subscribe request).
The peer address must also be the camera's own, a weak check on a LAN (addresses can be
spoofed or shared) that only keeps other hosts from using a leaked token.

Everything a camera (or anyone on the network) sends is bounded: POST only (405), an
unknown path is 404 before anything else is read, the body has a size limit (413, a
declared oversize is refused before reading), every read has a timeout and the whole
request a deadline (408), at most `max_connections` at once, and the XML goes through
the same hardened parser as every camera answer (defusedxml, no DTD, no entities,
depth and element limits; 400 with the reason). The notifications wait in the
subscription's bounded Inbox for the subscriber's own thread, which feeds them to the
same state machine as pulled ones. See docs/design/events.md.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import secrets
import socket
import socketserver
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Iterable, Iterator

from appliance.cameras.onvif.basenotify import notify_messages
from appliance.cameras.onvif.events import Notification
from appliance.cameras.onvif.policy import IPAddress
from appliance.cameras.onvif.soap import BadResponse, parse_xml
from appliance.core.errors import Unavailable

log = logging.getLogger(__name__)

NOTIFY_PATH = "/onvif-events/"
TOKEN_BYTES = 32                 # secrets.token_urlsafe: 43 characters, 256 bits
READ_CHUNK = 64 * 1024
MAX_CHUNK_LINE = 1024            # a chunk-size line (hex size and extensions)
MAX_TRAILERS = 16
DRAIN_BYTES = 256 * 1024         # read and dropped after an error answer (see _linger)
LINGER_S = 1.0
LOG_REPEAT_S = 60.0              # one log line per (peer, status) per minute
CONTENT_LENGTH = re.compile(r"[0-9]{1,15}")   # ASCII digits only, and a sane length


@dataclass(frozen=True)
class ReceiverSettings:
    host: str | None = None        # the box's camera-side address; None: the address the
                                   # box itself uses to reach each camera (its route)
    port: int = 8086               # 0: any free port (tests)
    max_body: int = 256 * 1024     # a Notify of 64 messages is about 60 KiB
    read_timeout_s: float = 5.0    # silence between two reads
    request_s: float = 10.0        # one request, from accept to answer
    max_connections: int = 16      # at once, over all cameras (memory: 16 x max_body)
    inbox_limit: int = 256         # notifications waiting for one subscriber


class Inbox:
    """One subscription's notifications, from the listener's threads to the subscriber's.
    `wake` is the subscriber's event: set on every delivery."""

    def __init__(self, camera: str, camera_ip: IPAddress, host: str, url: str, token: str,
                 wake: threading.Event, limit: int) -> None:
        self.camera = camera
        self.camera_ip = camera_ip
        self.host = host
        self.url = url
        self.token = token
        self._wake = wake
        self._limit = limit
        self._notes: deque[Notification] = deque()
        self._lock = threading.Lock()

    def put(self, notes: list[Notification]) -> bool:
        """Queue a Notify's notifications; False (nothing queued) when the subscriber is
        so far behind that they would pass the limit."""
        with self._lock:
            if len(self._notes) + len(notes) > self._limit:
                return False
            self._notes.extend(notes)
        self._wake.set()
        return True

    def take(self) -> list[Notification]:
        with self._lock:
            notes = list(self._notes)
            self._notes.clear()
        return notes


class NotifyReceiver:
    """Listeners (one per bind address, opened on demand) and the open inboxes."""

    def __init__(self, settings: ReceiverSettings = ReceiverSettings()) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._inboxes: dict[str, Inbox] = {}          # token -> inbox
        self._listeners: dict[str, _Listener] = {}    # bind address -> listener
        self._logged: dict[tuple[str, int], float] = {}
        self._log_lock = threading.Lock()   # not _lock: the serving thread logs too

    @contextmanager
    def receiving(self, camera: str, camera_ip: IPAddress,
                  wake: threading.Event) -> Iterator[Inbox]:
        """An inbox with its own consumer URL for one subscription, the listener open
        while it lasts."""
        inbox = self._open(camera, camera_ip, wake)
        try:
            yield inbox
        finally:
            self._close(inbox)

    def listening(self) -> list[tuple[str, int]]:
        """(address, port) of every open listener."""
        with self._lock:
            return sorted((lst.host, lst.port) for lst in self._listeners.values())

    def close(self) -> None:
        with self._lock:
            listeners, self._listeners = list(self._listeners.values()), {}
            self._inboxes.clear()
        for listener in listeners:
            listener.stop()

    def _open(self, camera: str, camera_ip: IPAddress, wake: threading.Event) -> Inbox:
        host = self.settings.host or local_address_towards(camera_ip)
        with self._lock:
            listener = self._listeners.get(host)
            if listener is None:
                listener = _Listener(host, self.settings, self)
                self._listeners[host] = listener
                log.info("listening for camera notifications on %s:%d", host, listener.port)
            token = secrets.token_urlsafe(TOKEN_BYTES)
            inbox = Inbox(camera, camera_ip, host, listener.url(token), token, wake,
                          self.settings.inbox_limit)
            self._inboxes[token] = inbox
        return inbox

    def _close(self, inbox: Inbox) -> None:
        with self._lock:
            self._inboxes.pop(inbox.token, None)
            if any(other.host == inbox.host for other in self._inboxes.values()):
                return
            listener = self._listeners.pop(inbox.host, None)
            if listener is not None:   # in the lock: a new one may bind the same port next
                listener.stop()
                log.info("stopped listening for camera notifications on %s:%d",
                         listener.host, listener.port)

    def inbox_for(self, host: str, path: str) -> Inbox | None:
        """The inbox a request path names on this listener, or None."""
        if not path.startswith(NOTIFY_PATH):
            return None
        with self._lock:
            inbox = self._inboxes.get(path[len(NOTIFY_PATH):])
        return inbox if inbox is not None and inbox.host == host else None

    def log_refusal(self, peer: str, status: int, detail: str) -> None:
        """Refusals are logged, at most once a minute per peer and status: a hostile
        sender does not flood the journal."""
        now = time.monotonic()
        key = (peer, status)
        with self._log_lock:
            last = self._logged.get(key)
            if last is not None and now - last < LOG_REPEAT_S:
                return
            if len(self._logged) > 1024:
                self._logged.clear()
            self._logged[key] = now
        log.warning("notification from peer=%s refused with %d: %s", peer, status, detail)


def local_address_towards(ip: IPAddress) -> str:
    """The box's address on its route to `ip`, which the camera can reach. Connecting a
    UDP socket only picks the route and source address: nothing is sent."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((str(ip), 9))
            return probe.getsockname()[0]
    except OSError as exc:
        raise Unavailable(f"no route to the camera at {ip} for its notifications: "
                          f"{exc.strerror or exc}") from None


def peer_ip(address: str) -> IPAddress | None:
    """The sender's address as an IP (an IPv4-mapped IPv6 address as IPv4)."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


class _Listener(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """One listening socket with a thread per connection, at most `max_connections`.
    A plain TCPServer, not http.server.HTTPServer, whose bind looks the address up in
    DNS (getfqdn) for nothing."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, settings: ReceiverSettings, receiver: NotifyReceiver) -> None:
        self.host = host
        self.settings = settings
        self.receiver = receiver
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._active = 0
        self._active_lock = threading.Lock()
        try:
            super().__init__((host, settings.port), _NotifyHandler)
        except OSError as exc:
            raise Unavailable(f"cannot listen for camera notifications on {host}:"
                              f"{settings.port}: {exc.strerror or exc}") from None
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, args=(0.1,), daemon=True,
                                        name=f"notify-{host}:{self.port}")
        self._thread.start()

    def url(self, token: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{NOTIFY_PATH}{token}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def process_request(self, request, client_address) -> None:  # noqa: ANN001
        with self._active_lock:
            full = self._active >= self.settings.max_connections
            if not full:
                self._active += 1
        if full:   # closed unanswered: a flood costs a file descriptor for a moment
            self.receiver.log_refusal(str(client_address[0]), 503, "too many connections")
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:  # noqa: ANN001
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._active_lock:
                self._active -= 1

    def handle_error(self, request, client_address) -> None:  # noqa: ANN001
        log.debug("notification connection from %s failed", client_address[0], exc_info=True)


class _Refused(Exception):
    """An error answer: status, reason phrase, and the explanation sent in the body."""

    def __init__(self, status: int, reason: str, explain: str,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(explain)
        self.status = status
        self.reason = reason
        self.explain = explain
        self.headers = tuple(headers)


class _NotifyHandler(BaseHTTPRequestHandler):
    """One connection, one request, one answer (always Connection: close)."""

    protocol_version = "HTTP/1.1"
    server: _Listener

    def version_string(self) -> str:
        return "vigil-events"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.settings.read_timeout_s)
        self._expired = False
        self._timer = threading.Timer(self.server.settings.request_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def finish(self) -> None:
        self._timer.cancel()
        super().finish()

    def _expire(self) -> None:
        """The request's deadline: shutting the socket down ends any read in progress,
        so a sender that trickles bytes cannot hold the connection."""
        self._expired = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base name
        log.debug("notify %s %s", self.client_address[0], format % args)

    # -- methods ------------------------------------------------------------------------

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        try:
            inbox = self._inbox()
            notes = self._notifications(inbox, self._body())
        except _Refused as refused:
            self._refuse(refused)
            return
        if not inbox.put(notes):
            self._refuse(_Refused(503, "Service Unavailable", f"camera {inbox.camera}: "
                                  f"{len(notes)} notifications dropped, the box is behind"))
            return
        self._answer(200, "OK", b"")   # a one-way operation: an empty answer (WS-I BP)

    def _not_allowed(self) -> None:
        self._refuse(_Refused(405, "Method Not Allowed", "only POST (an ONVIF Notify) is "
                              "accepted here", [("Allow", "POST")]))

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_allowed

    # -- checks, in order: path, sender, body, XML ----------------------------------------

    def _inbox(self) -> Inbox:
        inbox = self.server.receiver.inbox_for(self.server.host, self.path)
        if inbox is None:
            raise _Refused(404, "Not Found", "no such subscription")
        if peer_ip(self.client_address[0]) != inbox.camera_ip:
            raise _Refused(403, "Forbidden", "notifications for this subscription are "
                           "accepted from its camera's address only")
        return inbox

    def _body(self) -> bytes:
        encoding = self.headers.get("Transfer-Encoding", "").strip().lower()
        if encoding == "chunked":
            return self._chunked_body()
        if encoding:
            raise _Refused(501, "Not Implemented", f"Transfer-Encoding {encoding[:32]!r} is "
                           "not supported (chunked is)")
        declared = (self.headers.get("Content-Length") or "").strip()
        if not declared:
            raise _Refused(411, "Length Required", "a Notify needs a Content-Length or "
                           "chunked transfer encoding")
        if not CONTENT_LENGTH.fullmatch(declared):
            raise _Refused(400, "Bad Request", "the Content-Length is not a number")
        limit = self.server.settings.max_body
        if int(declared) > limit:
            raise _Refused(413, "Content Too Large", f"the body announces {int(declared)} "
                           f"bytes; the limit is {limit} (nothing was read)")
        return self._read(int(declared))

    def _chunked_body(self) -> bytes:
        """A chunked body, refused as soon as it would pass the limit: memory never holds
        more than the limit."""
        limit = self.server.settings.max_body
        chunks: list[bytes] = []
        size = 0
        while True:
            line = self._read_line()
            try:
                length = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _Refused(400, "Bad Request", "a chunk size is not hexadecimal") from None
            if length == 0:
                self._skip_trailers()
                return b"".join(chunks)
            if length < 0 or size + length > limit:
                raise _Refused(413, "Content Too Large", f"the body is longer than the limit "
                               f"of {limit} bytes (the rest was not read)")
            chunks.append(self._read(length))
            size += length
            if self._read_line().strip():
                raise _Refused(400, "Bad Request", "a chunk is longer than its size")

    def _skip_trailers(self) -> None:
        for _ in range(MAX_TRAILERS):
            if not self._read_line().strip():
                return
        raise _Refused(400, "Bad Request", f"more than {MAX_TRAILERS} trailer lines")

    def _read_line(self) -> bytes:
        line = self._reading(lambda: self.rfile.readline(MAX_CHUNK_LINE + 1))
        if len(line) > MAX_CHUNK_LINE:
            raise _Refused(400, "Bad Request", "a chunk line is too long")
        if not line.endswith(b"\n"):
            raise self._cut_short()
        return line

    def _read(self, size: int) -> bytes:
        data = self._reading(lambda: self.rfile.read(size))
        if len(data) < size:
            raise self._cut_short()
        return data

    def _reading(self, read):  # noqa: ANN001, ANN202
        try:
            return read()
        except (TimeoutError, OSError):
            raise self._cut_short() from None

    def _cut_short(self) -> _Refused:
        settings = self.server.settings
        if self._expired:
            return _Refused(408, "Request Timeout", f"the request took longer than "
                            f"{settings.request_s:g} s")
        return _Refused(408, "Request Timeout", f"the body stopped (silent for "
                        f"{settings.read_timeout_s:g} s, or the connection ended early)")

    def _notifications(self, inbox: Inbox, body: bytes) -> list[Notification]:
        try:
            root = parse_xml(body, f"the Notify from camera {inbox.camera}",
                             max_bytes=self.server.settings.max_body)
            return notify_messages(root)
        except BadResponse as exc:
            raise _Refused(400, "Bad Request", str(exc)) from None

    # -- answers --------------------------------------------------------------------------

    def _refuse(self, refused: _Refused) -> None:
        # The path is not logged: it may hold a live subscription's token.
        self.server.receiver.log_refusal(self.client_address[0], refused.status,
                                         f"{self.command}: {refused.explain}")
        body = f"{refused.status} {refused.reason}: {refused.explain}\n".encode()
        self._answer(refused.status, refused.reason, body, refused.headers)
        if self._announces_body():
            self._linger()

    def _answer(self, status: int, reason: str, body: bytes,
                headers: Iterable[tuple[str, str]] = ()) -> None:
        self.close_connection = True
        try:
            self.send_response(status, reason)
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            if body:
                self.send_header("Content-Type", "text/plain; charset=utf-8")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)
        except OSError:
            pass   # the sender went away; nothing to tell it

    def _announces_body(self) -> bool:
        declared = (self.headers.get("Content-Length") or "0").strip()
        return bool(self.headers.get("Transfer-Encoding")) or declared != "0"

    def _linger(self) -> None:
        """After an error answer with input left unread: stop sending, then read and drop
        what is still coming (bounded in bytes and time) before closing. Closing with
        unread input resets the connection, and the sender may lose our answer."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(LINGER_S)
            left = DRAIN_BYTES
            while left > 0:
                data = self.connection.recv(min(READ_CHUNK, left))
                if not data:
                    return
                left -= len(data)
        except OSError:
            pass


def receiver_for(settings) -> NotifyReceiver:
    """The receiver the `[cameras]` settings ask for (event_notify_address and _port)."""
    return NotifyReceiver(ReceiverSettings(host=settings.event_notify_address or None,
                                           port=settings.event_notify_port))
