"""Commands between the appliance's processes: one JSON line over a Unix socket.

vigil-hwd (PoE, disks, system settings) answers commands from vigil-web and `nvr` on a
Unix socket whose file mode limits who may connect. A request is one line
`{"command": "poe.power_cycle", "args": {...}}`; the answer is one line
`{"ok": true, "result": {...}}` or `{"ok": false, "kind": "invalid", "error": "..."}`.
The error kinds carry the appliance's error classes across the socket, so the web layer
answers a refused command with the same status and words as a local one.

Bounded everywhere: a request line is at most 64 KiB, a client that does not finish its
line within the read timeout is dropped, and a handler that raises something unexpected
answers "internal" (with the traceback in the daemon's log), never crashes the daemon.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any, Callable

from appliance.core.errors import (DataLoss, FailedPrecondition, InvalidConfig,
                                   ResourceExhausted, Unavailable, VigilError)

log = logging.getLogger(__name__)

MAX_LINE = 64 * 1024
Handler = Callable[[dict[str, Any]], dict[str, Any]]

KINDS: dict[str, type[VigilError]] = {
    "invalid": InvalidConfig, "unavailable": Unavailable,
    "failed_precondition": FailedPrecondition, "data_loss": DataLoss,
    "exhausted": ResourceExhausted, "internal": VigilError,
}


def kind_of(exc: VigilError) -> str:
    for kind, cls in KINDS.items():
        if cls is not VigilError and isinstance(exc, cls):
            return kind
    return "internal"


def answer(handlers: dict[str, Handler], line: bytes) -> dict[str, Any]:
    """The reply to one request line (pure: the server and the tests share it)."""
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return {"ok": False, "kind": "invalid", "error": "the request is not JSON"}
    if not isinstance(request, dict) or not isinstance(request.get("command"), str):
        return {"ok": False, "kind": "invalid", "error": "expected {\"command\": ..., \"args\": {...}}"}
    args = request.get("args", {})
    if not isinstance(args, dict):
        return {"ok": False, "kind": "invalid", "error": "`args` must be an object"}
    handler = handlers.get(request["command"])
    if handler is None:
        return {"ok": False, "kind": "invalid",
                "error": f"unknown command {request['command'][:80]!r}"}
    try:
        return {"ok": True, "result": handler(args)}
    except VigilError as exc:
        return {"ok": False, "kind": kind_of(exc), "error": str(exc)}
    except Exception:  # noqa: BLE001 - one bad command must not take the daemon down
        log.exception("control command=%s failed", request["command"])
        return {"ok": False, "kind": "internal",
                "error": f"{request['command']} failed inside the daemon (see its log)"}


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    handlers: dict[str, Handler]
    read_timeout: float


class _Connection(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        self.connection.settimeout(self.server.read_timeout)
        try:
            line = self.rfile.readline(MAX_LINE + 1)
        except OSError:  # the client was too slow or went away
            return
        if len(line) > MAX_LINE:
            reply = {"ok": False, "kind": "invalid", "error": "the request is too large"}
        else:
            reply = answer(self.server.handlers, line)
        try:
            self.wfile.write(json.dumps(reply).encode() + b"\n")
        except OSError:
            pass


class ControlServer:
    """Serves `handlers` (command name -> function of the args) on a Unix socket."""

    def __init__(self, path: Path, handlers: dict[str, Handler], mode: int = 0o660,
                 read_timeout: float = 5.0, group: str | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket():
            self.path.unlink()  # left by a daemon that was killed
        old = os.umask(0o177)  # the socket is never world-connectable, not even for a moment
        try:
            self._server = _Server(str(self.path), _Connection)
        finally:
            os.umask(old)
        if group is not None:  # e.g. "vigil": the web server's group may connect
            import grp

            try:
                os.chown(self.path, -1, grp.getgrnam(group).gr_gid)
            except KeyError:
                raise InvalidConfig(f"control socket group {group!r} does not exist") from None
        os.chmod(self.path, mode)
        self._server.handlers = dict(handlers)
        self._server.read_timeout = read_timeout
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.1,),
                                        name="control", daemon=True)

    def add(self, handlers: dict[str, Handler]) -> None:
        self._server.handlers.update(handlers)

    def start(self) -> "ControlServer":
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


class ControlClient:
    """Calls a ControlServer; a refusal is raised as the same error class it had there."""

    def __init__(self, path: Path, timeout: float = 15.0, daemon: str = "vigil-hwd") -> None:
        self.path = Path(path)
        self.timeout = timeout
        self.daemon = daemon

    def call(self, command: str, **args: Any) -> dict[str, Any]:
        request = json.dumps({"command": command, "args": args}).encode() + b"\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.path))
                sock.sendall(request)
                reply = sock.makefile("rb").readline(4 * MAX_LINE)
            except (FileNotFoundError, ConnectionRefusedError):
                raise Unavailable(f"{self.daemon} is not running (no answer on "
                                  f"{self.path})") from None
            except socket.timeout:
                raise Unavailable(f"{self.daemon} did not answer {command} within "
                                  f"{self.timeout:.0f} s") from None
            except OSError as exc:
                raise Unavailable(f"{self.daemon}: {exc.strerror or exc}") from None
        try:
            data = json.loads(reply)
        except ValueError:
            raise Unavailable(f"{self.daemon} closed the connection during {command}") from None
        if data.get("ok"):
            return data.get("result") or {}
        raise KINDS.get(data.get("kind"), VigilError)(data.get("error", "refused"))
