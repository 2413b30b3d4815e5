"""The production web server: gunicorn, one worker process with threads, HTTPS with the
device certificate, and a plain-HTTP port that only redirects (http_redirect.py).

Why gunicorn: a maintained production WSGI server with TLS (waitress has none) that runs
as a library (`BaseApplication`), tells systemd when it is ready (`Type=notify`) and
restarts a worker that dies. One worker process: the app keeps in-process state (the
live-view hub shares one camera connection between viewers), so every request must reach
the same process; `gthread` threads serve requests concurrently (a live viewer holds one).

Certificates are reloaded without a restart: gunicorn asks its `ssl_context` hook for a
context for every new connection; `CertificateReloader` stats `server.pem` (key and chain
in one file, replaced atomically by tls.py) and builds a new context only when the file
changed. Connections already open keep the certificate they started with. SIGHUP (a new
worker) is not needed, and would cut running live views.

Under gunicorn a response is written from the request's thread with a blocking send: a
client that stops reading would hold that thread for good. `ServerApp` puts a send timeout
on each request's socket, so such a thread is freed after `SEND_TIMEOUT`; live view sets
a shorter one on its responses, just above `live.viewer_max_delay` (live_api.py).
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from appliance.core.errors import InvalidConfig
from appliance.web import tls

log = logging.getLogger(__name__)

SEND_TIMEOUT = 20.0      # s a client may take nothing of a response before it is cut
GRACEFUL_SECONDS = 5     # at stop: open responses (live views never end) get this long
KEEPALIVE_SECONDS = 5    # an idle browser connection is kept this long (TLS handshakes)


class CertificateReloader:
    """gunicorn's `ssl_context` hook: one SSLContext per version of the served file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._version: tuple | None = None
        self._context: ssl.SSLContext | None = None
        self.source = "generated"
        self.fingerprint = ""

    def _file_version(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        # ctime too: an owner change (chown after writing as root) must be retried.
        return st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size

    def context(self) -> ssl.SSLContext:
        version = self._file_version()
        with self._lock:
            if version != self._version and (version is not None or self._context is None):
                self._version = version
                try:
                    context = tls.server_context(self.path)
                    source, chain = tls.read_served(self.path)
                except (OSError, ssl.SSLError, ValueError) as exc:
                    if self._context is None:
                        raise
                    log.error("tls: cannot load %s (%s); still serving %s", self.path, exc,
                              self.fingerprint)
                else:
                    self._context, self.source = context, source
                    self.fingerprint = tls.fingerprint(chain[0])
                    log.info("tls: serving %s certificate sha256 %s", source, self.fingerprint)
            assert self._context is not None
            return self._context

    def hook(self, conf, default_ssl_context_factory) -> ssl.SSLContext:  # noqa: ARG002
        return self.context()


class NamesFromFile:
    """Names derived from a file, derived again only when the file changes (one `stat` per
    request); none while the file is missing or `derive` refuses it."""

    def __init__(self, path: Path | None, derive: Callable[[Path], Iterable[str]]) -> None:
        self.path = path
        self._derive = derive
        self._version: tuple | None = None
        self._names: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def __call__(self) -> tuple[str, ...]:
        if self.path is None:
            return ()
        try:
            st = os.stat(self.path)
        except OSError:
            return ()
        version = (st.st_ino, st.st_mtime_ns, st.st_size)
        with self._lock:
            if version != self._version:
                self._version = version
                try:
                    self._names = tuple(self._derive(self.path))
                except (OSError, ValueError, InvalidConfig):
                    self._names = ()
            return self._names


def certificate_names(path: Path) -> list[str]:
    """The DNS names of the served certificate (no wildcards)."""
    _, chain = tls.read_served(path)
    return [n for n in tls.describe("", chain).dns_names if not n.startswith("*")]


def hostname_names(path: Path) -> list[str]:
    """The box's current name and its .local name from /etc/hostname (on the image a link
    to /run/vigil/hostname, rewritten when the owner renames the box)."""
    text = path.read_text(encoding="utf-8", errors="replace")[:256].strip()
    return tls.DeviceIdentity(text, ()).dns_names()


class HostNames:
    """What the app and the redirect answer to (security.host_allowed adds IP literals and
    localhost): the box's names at start, the DNS names of the certificate being served and
    the name in the hostname file, each re-read when its file changes: an owner certificate
    for `nvr.example.net` works at once, and so does a new name given on the System page
    (vigil-web's own host name is frozen at start by ProtectHostname=)."""

    def __init__(self, base: Iterable[str], certificate: Path | None,
                 hostname_file: Path | None = None) -> None:
        self.base = tuple(base)
        self._certificate = NamesFromFile(certificate, certificate_names)
        self._hostname = NamesFromFile(hostname_file, hostname_names)

    def __iter__(self):
        return iter(self.base + self._certificate() + self._hostname())


class ServerApp:
    """WSGI wrapper for our gunicorn: a send timeout on each request's socket, and HSTS
    on HTTPS while an owner certificate is served (tls.hsts_value says why only then)."""

    def __init__(self, app, source: Callable[[], str]) -> None:
        self.app = app
        self.source = source

    def __call__(self, environ, start_response):
        sock = environ.get("gunicorn.socket")
        if sock is not None:
            sock.settimeout(SEND_TIMEOUT)
        hsts = tls.hsts_value(self.source())
        if hsts is None or environ.get("wsgi.url_scheme") != "https":
            return self.app(environ, start_response)

        def start(status, headers, exc_info=None):
            return start_response(status, [*headers, ("Strict-Transport-Security", hsts)],
                                  exc_info)
        return self.app(environ, start)


class SendTimeoutLine(logging.Filter):
    """gunicorn logs a send timeout (a client that stopped reading) with a traceback; it is
    an expected event here: one line instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], TimeoutError):
            record.msg, record.args = "a client took nothing within the send timeout: its "\
                "response was ended", ()
            record.exc_info, record.exc_text, record.levelno, record.levelname = \
                None, None, logging.INFO, "INFO"
        return True


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    def bind_text(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _gunicorn_application(load: Callable[[], object], settings: dict):
    from gunicorn.app.base import BaseApplication

    class VigilWeb(BaseApplication):
        """gunicorn run as a library: our settings, our app object (made in the worker)."""

        def load_config(self) -> None:
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return load()

    return VigilWeb()


def _quiet_send_timeouts(worker) -> None:  # noqa: ARG001 - gunicorn hook signature
    logging.getLogger("gunicorn.error").addFilter(SendTimeoutLine())


def _settings(bind: Listen, threads: int) -> dict:
    return {
        "bind": [bind.bind_text()],
        "workers": 1,                     # one process: the live-view hub is in-process
        "worker_class": "gthread",
        "threads": threads,
        "keepalive": KEEPALIVE_SECONDS,
        "graceful_timeout": GRACEFUL_SECONDS,
        "timeout": 30,                    # the worker's main loop pings every second
        "proc_name": "vigil-web",
        "forwarded_allow_ips": "",        # no proxy in front: trust no X-Forwarded-*
        "secure_scheme_headers": {},
        "proxy_protocol": "off",
        "control_socket_disable": True,   # no management socket (least surface)
        "accesslog": None,
        "errorlog": "-",                  # stderr: journald
        "http_protocols": "h1",           # chunked live view is HTTP/1.1
        "post_worker_init": _quiet_send_timeouts,
    }


def serve_https(load: Callable[[], object], https: Listen, http: Listen | None,
                store: tls.TlsStore, identity: tls.DeviceIdentity, threads: int,
                names: Iterable[str]) -> None:
    """Run until stopped: HTTPS on `https`, the redirect on `http` (None: no plain port).

    `load` makes the WSGI app in the worker process; it is wrapped with ServerApp here.
    `names` are the host names the redirect accepts (the app's VIGIL_ALLOWED_HOSTS).
    """
    from appliance.web.http_redirect import RedirectServer, bind as bind_redirect, \
        redirect_app

    status = store.ensure(identity)
    log.info("tls: %s certificate for %s, sha256 %s, valid until %s", status.source,
             ", ".join(status.dns_names + status.ip_addresses), status.fingerprint_sha256,
             status.not_after.date())
    if status.missing_names:
        log.warning("tls: the certificate does not name %s (regenerate it, or install one "
                    "that does, if browsers should match those names)",
                    ", ".join(status.missing_names))
    reloader = CertificateReloader(store.served_path)
    reloader.context()  # fails the start here if the file cannot be served
    try:
        redirect_socket = bind_redirect((http.host, http.port)) if http else None
    except OSError as exc:
        raise InvalidConfig(f"--http-listen {http.bind_text()}: {exc.strerror or exc}") \
            from None

    def worker_ready(worker) -> None:
        _quiet_send_timeouts(worker)
        if redirect_socket is not None:
            RedirectServer(redirect_socket, redirect_app(lambda: names, https.port)).start()

    def wrapped():
        return ServerApp(load(), lambda: reloader.source)

    settings = _settings(https, threads) | {
        "certfile": str(store.served_path),   # key and chain in one file
        "keyfile": None,
        "ssl_context": reloader.hook,
        "post_worker_init": worker_ready,
    }
    _gunicorn_application(wrapped, settings).run()


def serve_plain(load: Callable[[], object], listen: Listen, threads: int) -> None:
    """Development: the same server in plain HTTP, on a loopback address only."""
    import ipaddress

    if not ipaddress.ip_address(listen.host).is_loopback:
        raise InvalidConfig("plain HTTP serves the app on a loopback address only; the "
                            "box serves HTTPS (--https-listen)")
    _gunicorn_application(lambda: ServerApp(load(), lambda: ""),
                          _settings(listen, threads)).run()

