"""Run the relay (`rtsp_relay.py`, system python) and keep it in step with the cameras.

`RelayProcess` is one relay process: spec on stdin, `READY <port>` on stdout, the log
on stderr (journald on the box, a file in development), and it exits by itself when its
parent dies. `RestreamSupervisor` polls the camera registry and the camera credentials
(their files' modification times, as the recorder polls its camera list) and, when the
planned spec changes, replaces the relay: clients are cut and reconnect, which VMSes do
by themselves. A relay that dies is started again, at most once per RESTART_INTERVAL_S.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable

from appliance.cameras.registry import CameraRegistry
from appliance.core.errors import Unavailable
from appliance.restream.login import RestreamLogin
from appliance.restream.plan import (DEFAULT_AUTH_METHODS, Mount, Skipped, plan_from_registry,
                                     relay_spec)

log = logging.getLogger(__name__)

SYSTEM_PYTHON_ENV = "VIGIL_SYSTEM_PYTHON"
DEFAULT_SYSTEM_PYTHON = "/usr/bin/python3"
RELAY_SCRIPT = Path(__file__).with_name("rtsp_relay.py")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
RESTART_INTERVAL_S = 5.0
STDERR_TAIL_BYTES = 4000


def system_python() -> str:
    """Debian's interpreter, which has GStreamer's `gi` bindings (the venv has not)."""
    return os.environ.get(SYSTEM_PYTHON_ENV, DEFAULT_SYSTEM_PYTHON)


class RelayProcess:
    """One `rtsp_relay.py` process serving one spec."""

    def __init__(self, spec: dict[str, Any], address: str, port: int,
                 log_path: Path | None = None) -> None:
        self.spec = spec
        self.address = address
        self.requested_port = port
        self.log_path = log_path
        self.port: int | None = None        # the bound port, once READY
        self._process: subprocess.Popen | None = None
        self._stderr: BinaryIO | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = START_TIMEOUT_S) -> int:
        """Launch and wait for READY; the bound port, or Unavailable with the log tail."""
        self._stderr = self._open_log()
        self._process = subprocess.Popen(
            [system_python(), str(RELAY_SCRIPT), "--address", self.address,
             "--port", str(self.requested_port), "--exit-with-parent", str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            start_new_session=True)
        try:
            self._send_spec()
            self.port = self._wait_ready(time.monotonic() + timeout)
        except BaseException:
            self._terminate(signal.SIGKILL)
            raise
        return self.port

    def stop(self) -> int | None:
        """SIGTERM, SIGKILL if it lingers; the exit status."""
        return self._terminate(signal.SIGTERM)

    def log_tail(self, limit: int = STDERR_TAIL_BYTES) -> str:
        """The end of the relay's log, when it goes to a file (not journald)."""
        if self._stderr is None or self._stderr.closed or self._stderr.fileno() <= 2:
            return ""
        fd = self._stderr.fileno()
        size = os.fstat(fd).st_size
        start = max(0, size - limit)
        return os.pread(fd, size - start, start).decode("utf-8", "replace")

    def _open_log(self) -> BinaryIO | None:
        if self.log_path is None:
            return None   # inherit stderr: journald on the box
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        return open(self.log_path, "ab")  # noqa: SIM115 - closed in _terminate

    def _send_spec(self) -> None:
        """On stdin, never on argv (`ps` would show the passwords)."""
        assert self._process is not None and self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(self.spec).encode())
            self._process.stdin.close()
        except BrokenPipeError:
            pass   # it died at once; _wait_ready says so

    def _wait_ready(self, deadline: float) -> int:
        assert self._process is not None and self._process.stdout is not None
        received = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while b"\n" not in received:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise Unavailable(self._failure("did not become ready in time"))
                if not selector.select(timeout=remaining):
                    continue
                chunk = os.read(self._process.stdout.fileno(), 4096)
                if not chunk:
                    status = self._process.wait(timeout=STOP_TIMEOUT_S)
                    raise Unavailable(self._failure(f"exited with status {status}"))
                received += chunk
        word, _, port = received.partition(b"\n")[0].decode().partition(" ")
        if word != "READY" or not port.isdigit():
            raise Unavailable(self._failure(f"said {received[:80]!r} instead of READY"))
        return int(port)

    def _failure(self, what: str) -> str:
        tail = self.log_tail()
        return (f"the restream relay on {self.address}:{self.requested_port} {what}"
                + (f"\n--- its log ---\n{tail}" if tail else ""))

    def _terminate(self, signum: signal.Signals) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
        return process.returncode


def file_signature(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


class RestreamSupervisor:
    """The relay for the registry's cameras, restarted when they change or it dies."""

    def __init__(self, registry: CameraRegistry, login: RestreamLogin, address: str,
                 port: int, log_path: Path | None = None,
                 auth_methods: tuple[str, ...] = DEFAULT_AUTH_METHODS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.login = login
        self.address = address
        self.port = port       # the requested port; once listening, the bound one (kept)
        self.log_path = log_path
        self.auth_methods = auth_methods
        self.clock = clock
        self.mounts: list[Mount] = []
        self.skipped: list[Skipped] = []
        self.relay: RelayProcess | None = None
        self._serving: list[Mount] | None = None   # what the running relay was given
        self._watched: tuple | None = None
        self._next_start = 0.0

    def start(self) -> None:
        """Plan and start the relay; raises Unavailable when it cannot start."""
        self._replan()
        self._launch()

    def tick(self) -> None:
        """Follow camera changes; start a relay that died or did not start. Starts are
        at least RESTART_INTERVAL_S apart, so a burst of changes makes one restart."""
        if self._watch_signature() != self._watched:
            self._replan()
        if self.relay is not None and not self.relay.running:
            log.warning("restream relay exited status=%s", self.relay.stop())
            self.relay = None
        if (self.relay is None or self._serving != self.mounts) and \
                self.clock() >= self._next_start:
            if self.relay is not None:
                log.info("cameras changed, restarting the restream mounts=%d", len(self.mounts))
            self.stop()
            try:
                self._launch()
            except Unavailable as exc:
                log.error("restream relay did not start: %s", exc)

    def stop(self) -> None:
        if self.relay is not None:
            self.relay.stop()
            self.relay = None

    def _replan(self) -> None:
        self._watched = self._watch_signature()
        self.mounts, self.skipped = plan_from_registry(self.registry)

    def _launch(self) -> None:
        self._next_start = self.clock() + RESTART_INTERVAL_S
        spec = relay_spec(self.mounts, self.login.ensure(), self.auth_methods)
        relay = RelayProcess(spec, self.address, self.port, self.log_path)
        self.port = relay.start()
        self.relay, self._serving = relay, self.mounts
        log.info("restream listening address=%s port=%d mounts=%d skipped=%d", self.address,
                 self.port, len(self.mounts), len(self.skipped))

    def _watch_signature(self) -> tuple:
        """What changes when a camera is added, changed or removed, or its login changes
        (credential files are replaced atomically: the directory's mtime moves)."""
        return (file_signature(self.registry.path),
                file_signature(self.registry.credentials.directory))
