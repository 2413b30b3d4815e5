"""A guard for the tests that throw generated and hostile input at the API: while armed,
nothing in this process may connect or send beyond loopback, resolve a host name, or
start a program. Such attempts are blocked (the call fails as a refused connection or an
unknown name would) and recorded, so the test can fail naming them.

It rests on Python's audit hooks (PEP 578): every socket connect, sendto, name lookup and
process start raises an audit event before it happens, in whatever thread. A hook cannot
be removed, so one is installed per process and does nothing while disarmed.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
import threading
from contextlib import contextmanager
from typing import Any, Iterator

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "127.0.0.1", "::1"})
PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
                            "os.spawn", "os.fork", "os.forkpty"})


class _Guard:
    def __init__(self) -> None:
        self.armed = False
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.installed = False

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.armed:
            return
        if event in ("socket.connect", "socket.sendto"):
            address = args[1]
            if isinstance(address, tuple) and address and not _loopback(address[0]):
                self._record(event, repr(address))
                raise PermissionError(errno.EACCES, "blocked by the test's network guard")
        elif event == "socket.sendmsg":
            address = args[1] if len(args) > 1 else None
            if isinstance(address, tuple) and address and not _loopback(address[0]):
                self._record(event, repr(address))
                raise PermissionError(errno.EACCES, "blocked by the test's network guard")
        elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex",
                       "socket.gethostbyaddr"):
            host = args[0]
            if isinstance(host, bytes):
                host = host.decode("ascii", "replace")
            if host is not None and not _loopback(host):
                self._record(event, repr(host))
                raise socket.gaierror(socket.EAI_NONAME, "blocked by the test's network guard")
        elif event in PROCESS_EVENTS:
            self._record(event, repr(args[:2])[:300])
            raise PermissionError(errno.EPERM, "no process may start during this test")

    def _record(self, event: str, detail: str) -> None:
        with self.lock:
            self.seen.append((event, detail))


def _loopback(host: Any) -> bool:
    if not isinstance(host, str):
        return False
    if host.lower() in LOOPBACK_NAMES or host == "":
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


_GUARD = _Guard()


@contextmanager
def outside_world_blocked() -> Iterator[list[tuple[str, str]]]:
    """Arm the guard; yields the list of blocked attempts (event, detail), which grows."""
    if not _GUARD.installed:
        sys.addaudithook(_GUARD.hook)
        _GUARD.installed = True
    with _GUARD.lock:
        _GUARD.seen = []
    _GUARD.armed = True
    try:
        yield _GUARD.seen
    finally:
        _GUARD.armed = False
