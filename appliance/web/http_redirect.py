"""The plain-HTTP port: it only sends browsers to HTTPS (308, same host name and path).

Someone who types the box's name or address without `https://` lands on port 80; this
answers every request there with `308 Permanent Redirect` to `https://<same host><same
path>`, and nothing else (no page, no API over plain HTTP). The Host header is checked
like the app does (security.host_allowed: IP literals, localhost, the box's names), so
the redirect cannot be pointed at another site: an unknown name gets 421.

Served by waitress (already a dependency: bounded threads, channel timeouts) on a socket
the HTTPS server's master process bound, from a thread in its worker process.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from typing import Callable, Iterable
from urllib.parse import quote, urlsplit

from appliance.web.security import host_allowed

log = logging.getLogger(__name__)


def host_name(host: str) -> str:
    """The name part of a Host header (brackets kept for IPv6), without the port."""
    if host.startswith("["):
        return host[:host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host


def request_target(environ: dict) -> str:
    """The path and query as the client sent them. An absolute-form target
    (`GET http://other/x`) keeps only its path: the host is the checked Host header."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or ""
    if raw.startswith("/"):
        return raw
    if raw:
        parts = urlsplit(raw)
        path, query = (parts.path if parts.path.startswith("/") else "/"), parts.query
    else:
        path = quote(environ.get("PATH_INFO", "") or "/", safe="/;:@&=+$,!~*'()%")
        query = environ.get("QUERY_STRING", "")
    return path + (f"?{query}" if query else "")


def redirect_app(allowed_hosts: Callable[[], Iterable[str]], https_port: int):
    """A WSGI app that answers everything with a redirect to HTTPS, or 421/400."""
    port = "" if https_port == 443 else f":{https_port}"

    def answer(start_response, status: str, body: bytes, content_type: str, extra=()):
        start_response(status, [("Content-Type", content_type),
                                ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store"), *extra])
        return [body]

    def app(environ, start_response):
        host = environ.get("HTTP_HOST", "")
        if not host:
            return answer(start_response, "400 Bad Request",
                          json.dumps({"error": "a Host header is required"}).encode(),
                          "application/json")
        allowed = frozenset(h.lower() for h in allowed_hosts())
        if not host_allowed(host, allowed):
            return answer(start_response, "421 Misdirected Request",
                          json.dumps({"error": "unknown host name"}).encode(),
                          "application/json")
        location = f"https://{host_name(host)}{port}{request_target(environ)}"
        return answer(start_response, "308 Permanent Redirect",
                      f"This box answers on HTTPS only: {location}\n".encode(),
                      "text/plain; charset=utf-8", [("Location", location)])
    return app


def bind(address: tuple[str, int]) -> socket.socket:
    """The listening socket, bound now (in the master: a taken port fails the start)."""
    host, port = address
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


class RedirectServer:
    """waitress on a bound socket, in a daemon thread of the process that calls start()."""

    def __init__(self, sock: socket.socket, app) -> None:
        self.sock = sock
        self.app = app
        self.server = None

    def start(self) -> None:
        from waitress.server import create_server

        self.server = create_server(self.app, sockets=[self.sock], threads=2,
                                    channel_timeout=10, connection_limit=64, ident="vigil",
                                    clear_untrusted_proxy_headers=True)
        threading.Thread(target=self.server.run, name="http-redirect", daemon=True).start()
        log.info("http: redirecting %s to https", self.sock.getsockname()[:2])

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
