"""A fake ONVIF camera on loopback for tests: answers from the hand-written fixtures,
checks WS-Security like a strict camera (digest, nonce replay, `created` within 5 s of
*its own* clock, which may be set off ours), optionally wants HTTP Digest on top, and
records every request it gets.

User management like a camera's: GetUsers lists its users and their levels, SetUser
changes a password (and level), after which only the new password is accepted.
`down = True` makes it drop every connection unanswered (a camera rebooting).
`host` puts it on another loopback address (127.0.0.2: the same camera after a DHCP
change).
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "cameras" / "onvif"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TRT = "http://www.onvif.org/ver10/media/wsdl"
TR2 = "http://www.onvif.org/ver20/media/wsdl"
SKEW_WINDOW_S = 5.0

Answer = bytes | Callable[[str], tuple[int, bytes]]


@dataclass
class Seen:
    action: str
    path: str
    authenticated: bool
    created: str | None
    http_digest: bool


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _field(body: str, tag: str) -> str | None:
    match = re.search(rf"<(?:\w+:)?{tag}\b[^>]*>([^<]*)</(?:\w+:)?{tag}>", body)
    return match.group(1) if match else None


class FakeCamera:
    def __init__(self, *, username: str = "admin", password: str = "pa55 word",
                 skew_s: float = 0.0, media2: bool = False, http_digest: bool = False,
                 answers: dict[str, Answer] | None = None, host: str = "127.0.0.1",
                 user_level: str = "Administrator") -> None:
        self.host = host
        self.username = username
        self.password = password
        self.user_level = user_level
        self.other_users = {"operator": "Operator", "viewer": "User"}   # name -> level
        self.set_user_calls: list[tuple[str, str]] = []    # (user name, level); no passwords
        self.down = False
        self.skew_s = skew_s
        self.media2 = media2
        self.http_digest = http_digest
        self.requests: list[Seen] = []
        self._nonces: set[str] = set()
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.answers: dict[str, Answer] = self._defaults()
        self.answers.update(answers or {})
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    @property
    def xaddr(self) -> str:
        return f"http://{self.host}:{self.port}/onvif/device_service"

    def __enter__(self) -> "FakeCamera":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def actions(self) -> list[str]:
        return [seen.action.rpartition("/")[2] for seen in self.requests]

    # -- answers ------------------------------------------------------------------------

    def localise(self, data: bytes) -> bytes:
        """Fixture addresses (192.168.1.20) -> this fake's address."""
        host = self.host.encode()
        return (data.replace(b"http://192.168.1.20/", b"http://%s:%d/" % (host, self.port))
                .replace(b"192.168.1.20", host))

    def _defaults(self) -> dict[str, Answer]:
        services = fixture("get_services.xml")
        if not self.media2:
            services = re.sub(rb"<tds:Service><tds:Namespace>http://www.onvif.org/ver20/media"
                              rb"/wsdl</tds:Namespace>.*?</tds:Service>", b"", services)
        return {
            f"{TDS}/GetSystemDateAndTime": lambda body: (200, self._date_and_time()),
            f"{TDS}/GetDeviceInformation":
                self.localise(fixture("device_information.prefixed.xml")),
            f"{TDS}/GetServices": self.localise(services),
            f"{TDS}/GetNetworkInterfaces": fixture("network_interfaces.xml"),
            f"{TDS}/GetEndpointReference": fixture("endpoint_reference.xml"),
            f"{TRT}/GetProfiles": fixture("get_profiles.media1.xml"),
            f"{TRT}/GetStreamUri": lambda body: (200, self._stream_uri(body, TRT)),
            f"{TRT}/GetSnapshotUri": self.localise(fixture("snapshot_uri.xml")),
            f"{TR2}/GetProfiles": fixture("get_profiles.media2.xml"),
            f"{TR2}/GetStreamUri": lambda body: (200, self._stream_uri(body, TR2)),
            f"{TDS}/GetUsers": lambda body: (200, self._users()),
            f"{TDS}/SetUser": self.set_user,
        }

    def _date_and_time(self) -> bytes:
        now = datetime.fromtimestamp(time.time() + self.skew_s, timezone.utc)
        return (
            '<?xml version="1.0" encoding="UTF-8"?><s:Envelope '
            'xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
            f'xmlns:tds="{TDS}" xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body>'
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>Manual</tt:DateTimeType>"
            "<tt:DaylightSavings>false</tt:DaylightSavings>"
            f"<tt:UTCDateTime><tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}"
            f"</tt:Minute><tt:Second>{now.second}</tt:Second></tt:Time><tt:Date><tt:Year>"
            f"{now.year}</tt:Year><tt:Month>{now.month}</tt:Month><tt:Day>{now.day}</tt:Day>"
            "</tt:Date></tt:UTCDateTime></tds:SystemDateAndTime>"
            "</tds:GetSystemDateAndTimeResponse></s:Body></s:Envelope>").encode()

    def _stream_uri(self, body: str, ns: str) -> bytes:
        token = _field(body, "ProfileToken") or "none"
        uri = f"rtsp://{self.host}:554/stream/{token}"
        prefix = "tr2" if ns == TR2 else "trt"
        inner = (f"<tr2:Uri>{uri}</tr2:Uri>" if ns == TR2 else
                 f"<trt:MediaUri><tt:Uri>{uri}</tt:Uri></trt:MediaUri>")
        return ('<?xml version="1.0"?>'
                '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
                f'xmlns:trt="{TRT}" xmlns:tr2="{TR2}" xmlns:tt="http://www.onvif.org/ver10/schema">'
                f"<s:Body><{prefix}:GetStreamUriResponse>{inner}"
                f"</{prefix}:GetStreamUriResponse></s:Body></s:Envelope>").encode()

    def _users(self) -> bytes:
        users = {self.username: self.user_level, **self.other_users}
        entries = "".join(f"<tds:User><tt:Username>{html.escape(name)}</tt:Username>"
                          f"<tt:UserLevel>{level}</tt:UserLevel></tds:User>"
                          for name, level in users.items())
        return self._response(f"<tds:GetUsersResponse>{entries}</tds:GetUsersResponse>")

    def set_user(self, body: str) -> tuple[int, bytes]:
        """SetUser as cameras do it: the user must exist; the change applies at once."""
        inner = body[body.find("Body>"):]   # past the WS-Security header's Username
        name, password = _field(inner, "Username"), _field(inner, "Password")
        level = _field(inner, "UserLevel") or ""
        if name is None or password is None:
            return 400, fixture("fault.action-not-supported.xml")
        name, password = html.unescape(name), html.unescape(password)
        self.set_user_calls.append((name, level))
        if name == self.username:
            self.password, self.user_level = password, level
        elif name in self.other_users:
            self.other_users[name] = level
        else:
            return 400, fixture("fault.action-not-supported.xml")
        return 200, self._response("<tds:SetUserResponse/>")

    @staticmethod
    def _response(body: str) -> bytes:
        return ('<?xml version="1.0" encoding="UTF-8"?><s:Envelope '
                'xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
                f'xmlns:tds="{TDS}" xmlns:tt="http://www.onvif.org/ver10/schema">'
                f"<s:Body>{body}</s:Body></s:Envelope>").encode()

    # -- checks -------------------------------------------------------------------------

    def ws_security_ok(self, body: str) -> tuple[bool, str | None]:
        user, password = _field(body, "Username"), _field(body, "Password")
        nonce, created = _field(body, "Nonce"), _field(body, "Created")
        if None in (user, password, nonce, created) or "PasswordDigest" not in body:
            return False, created
        stamp = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        if abs(stamp.timestamp() - (time.time() + self.skew_s)) > SKEW_WINDOW_S:
            return False, created
        if nonce in self._nonces:
            return False, created
        self._nonces.add(nonce)
        expected = base64.b64encode(hashlib.sha1(base64.b64decode(nonce) + created.encode()
                                                 + self.password.encode()).digest()).decode()
        return user == self.username and password == expected, created

    def http_digest_ok(self, header: str, method: str) -> bool:
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', header))
        if not header.startswith("Digest ") or params.get("nonce") != "fakenonce":
            return False
        ha1 = hashlib.md5(f"{self.username}:fakecam:{self.password}".encode()).hexdigest()
        ha2 = hashlib.md5(f"{method}:{params.get('uri')}".encode()).hexdigest()
        want = hashlib.md5(f"{ha1}:fakenonce:{params.get('nc')}:{params.get('cnonce')}:auth:"
                           f"{ha2}".encode()).hexdigest()
        return params.get("response") == want and params.get("username") == self.username

    def _handler(self):  # noqa: ANN202
        cam = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                if cam.down:             # rebooting: the connection drops unanswered
                    self.close_connection = True
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace")
                match = re.search(r'action="([^"]+)"', self.headers.get("Content-Type", ""))
                action = match.group(1) if match else ""
                digest_ok = cam.http_digest_ok(self.headers.get("Authorization", ""), "POST")
                if cam.http_digest and not digest_ok:
                    cam.requests.append(Seen(action, self.path, False, None, False))
                    self.send(401, b"", {"WWW-Authenticate": 'Digest realm="fakecam", '
                                         'nonce="fakenonce", qop="auth", algorithm=MD5'})
                    return
                ok, created = cam.ws_security_ok(body)
                cam.requests.append(Seen(action, self.path, ok, created, digest_ok))
                if not ok and not action.endswith("/GetSystemDateAndTime") \
                        and not cam.http_digest:
                    self.send(400, fixture("fault.not-authorized.xml"))
                    return
                answer = cam.answers.get(action)
                if answer is None:
                    self.send(400, fixture("fault.action-not-supported.xml"))
                    return
                status, data = answer(body) if callable(answer) else (200, answer)
                self.send(status, data)

            def send(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
