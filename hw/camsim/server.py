"""Start, stop and crash simulated-camera RTSP servers from the project virtualenv.

``SimCameraServer`` runs ``rtsp_server.py`` under Debian's system interpreter
(``/usr/bin/python3``, which has GStreamer's ``gi`` bindings; override it with the
``VIGIL_SYSTEM_PYTHON`` environment variable) and serves every ``SimCamera`` from that
one process on ``rtsp://127.0.0.1:PORT/<mount>``. Stdlib only.

Typical use in a test::

    clip = ensure_clip(cache, seconds=6, width=640, height=360, bitrate_kbps=800)
    with SimCameraServer(free_port(), [SimCamera("/cam1", clip)]) as server:
        av.open(server.url("/cam1"), options={"rtsp_transport": "tcp"})

For humans (``make run``): ``python -m hw.camsim.server --cache var/cache --port 8554
--cameras 2`` encodes a default clip once and serves /cam1../camN until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Sequence
from urllib.parse import quote

from hw.camsim.clips import ensure_clip
from hw.camsim.spec import SimCamera

log = logging.getLogger(__name__)

SYSTEM_PYTHON_ENV = "VIGIL_SYSTEM_PYTHON"
DEFAULT_SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")
LOOPBACK = "127.0.0.1"
STDERR_TAIL_BYTES = 4000
# A restarted server may find its port briefly held by the dying process.
REBIND_RETRY_INTERVAL_S = 0.2
EXIT_CANNOT_LISTEN = 3  # rtsp_server.py's status when the port is taken


class CamSimError(RuntimeError):
    """The simulated camera server failed to start; the message has its stderr tail."""


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (free when checked; bind it soon)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def system_python() -> str:
    return os.environ.get(SYSTEM_PYTHON_ENV, DEFAULT_SYSTEM_PYTHON)


class SimCameraServer:
    """One ``rtsp_server.py`` process serving several simulated cameras."""

    def __init__(
        self,
        port: int,
        cameras: Sequence[SimCamera],
        log_path: Path | None = None,
        auth_methods: Sequence[str] = ("basic",),
        transports: Sequence[str] = ("tcp",),
    ):
        if not cameras:
            raise ValueError("SimCameraServer needs at least one camera")
        self.port = port
        self.cameras = list(cameras)
        self.log_path = Path(log_path) if log_path else None
        self.auth_methods = tuple(auth_methods)
        self.transports = tuple(transports)
        self.startup_s: float | None = None
        self._process: subprocess.Popen | None = None
        self._stderr: BinaryIO | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        """Launch the server and wait until it listens; raise CamSimError otherwise."""
        if self.running:
            raise CamSimError(f"camsim on port {self.port} is already running")
        started = time.monotonic()
        self._stderr = self._open_stderr()
        self._process = subprocess.Popen(
            self._argv(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        try:
            self._send_spec()
            self._wait_ready(started + timeout)
        except BaseException:
            self._terminate(signal.SIGKILL, timeout=5.0)
            raise
        self.startup_s = time.monotonic() - started
        log.info(
            "camsim started port=%d pid=%d cameras=%d startup_s=%.3f",
            self.port,
            self._process.pid,
            len(self.cameras),
            self.startup_s,
        )

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit status."""
        return self._terminate(signal.SIGTERM, timeout)

    def kill(self) -> int | None:
        """SIGKILL at once, like a camera losing power; returns the exit status."""
        return self._terminate(signal.SIGKILL, timeout=5.0)

    def restart(self, timeout: float = 20.0) -> None:
        """Stop (if running) and start again on the same port.

        gst-rtsp-server binds with SO_REUSEADDR, so the port is free again as soon as
        the old process is gone; a start that still finds it busy is retried until
        ``timeout``.
        """
        self.stop()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.start(timeout=max(0.1, deadline - time.monotonic()))
                return
            except CamSimError:
                exit_status = self._process.returncode if self._process else None
                if exit_status != EXIT_CANNOT_LISTEN or time.monotonic() >= deadline:
                    raise
                log.warning("camsim port=%d still busy, retrying", self.port)
                time.sleep(REBIND_RETRY_INTERVAL_S)

    def wait(self, timeout: float | None = None) -> int:
        """Block until the server process exits (e.g. it crashed); its exit status."""
        if self._process is None:
            raise CamSimError("camsim server was never started")
        return self._process.wait(timeout=timeout)

    def url(self, mount: str, user: str | None = None, password: str | None = None) -> str:
        """``rtsp://[user:password@]127.0.0.1:PORT/mount`` (credentials URL-quoted)."""
        if not mount.startswith("/"):
            mount = "/" + mount
        credentials = ""
        if user is not None:
            credentials = quote(user, safe="")
            if password is not None:
                credentials += ":" + quote(password, safe="")
            credentials += "@"
        return f"rtsp://{credentials}{LOOPBACK}:{self.port}{mount}"

    def stderr_tail(self, limit: int = STDERR_TAIL_BYTES) -> str:
        """The last ``limit`` bytes the server wrote to stderr (its log)."""
        if self._stderr is None or self._stderr.closed:
            return ""
        fd = self._stderr.fileno()
        size = os.fstat(fd).st_size
        offset = max(0, size - limit)
        return os.pread(fd, size - offset, offset).decode("utf-8", "replace")

    def __enter__(self) -> SimCameraServer:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals

    def _argv(self) -> list[str]:
        return [
            system_python(),
            str(RTSP_SERVER_SCRIPT),
            "--port",
            str(self.port),
            "--spec",
            "-",
            "--exit-with-parent",
            str(os.getpid()),
        ]

    def _send_spec(self) -> None:
        """Pass the spec on stdin (not argv, where ``ps`` would show the passwords)."""
        assert self._process is not None and self._process.stdin is not None
        spec = {
            "mounts": [camera.to_spec() for camera in self.cameras],
            "auth_methods": list(self.auth_methods),
            "transports": list(self.transports),
        }
        try:
            self._process.stdin.write(json.dumps(spec).encode())
            self._process.stdin.close()
        except BrokenPipeError:
            pass  # the server died at once; _wait_ready reports its stderr

    def _open_stderr(self) -> BinaryIO:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            return open(self.log_path, "ab")  # noqa: SIM115 - closed in _terminate
        return tempfile.TemporaryFile(prefix="camsim-", suffix=".log")

    def _wait_ready(self, deadline: float) -> None:
        """Read stdout until ``READY <port>``, the process exits, or the deadline."""
        assert self._process is not None and self._process.stdout is not None
        expected = f"READY {self.port}".encode()
        received = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while expected not in received.splitlines():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CamSimError(self._failure("did not become ready in time"))
                if not selector.select(timeout=remaining):
                    continue
                chunk = os.read(self._process.stdout.fileno(), 4096)
                if not chunk:
                    status = self._process.wait(timeout=5.0)
                    raise CamSimError(self._failure(f"exited with status {status}"))
                received += chunk

    def _failure(self, what: str) -> str:
        return (
            f"camsim server on 127.0.0.1:{self.port} {what}; command: "
            f"{' '.join(self._argv())}\n--- stderr tail ---\n{self.stderr_tail()}"
        )

    def _terminate(self, signum: signal.Signals, timeout: float) -> int | None:
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signum)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("camsim port=%d ignored %s, killing", self.port, signum.name)
                process.kill()
                process.wait(timeout=timeout)
            log.info("camsim stopped port=%d signal=%s status=%s", self.port, signum.name,
                     process.returncode)
        if process.stdout is not None:
            process.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
        return process.returncode


# ---------------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m hw.camsim.server",
        description="Serve N simulated cameras on rtsp://127.0.0.1:PORT/cam1..camN.",
    )
    parser.add_argument("--cache", type=Path, default=Path("var/cache"), help="clip cache dir")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--cameras", type=int, default=2, help="number of cameras")
    parser.add_argument("--codec", choices=("h264", "h265"), default="h264")
    parser.add_argument("--audio", choices=("aac", "pcm_mulaw", "pcm_alaw"), default=None)
    parser.add_argument("--seconds", type=int, default=20, help="clip length (it loops)")
    parser.add_argument("--size", default="1920x1080", help="WIDTHxHEIGHT")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--bitrate-kbps", type=int, default=4000)
    parser.add_argument("--unshared", action="store_true", help="one pipeline per client")
    parser.add_argument("--user", help="protect every camera with this user")
    parser.add_argument("--password", help="password for --user")
    parser.add_argument("--log-file", type=Path, help="append the server log here (default: temporary file)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    clip = ensure_clip(
        args.cache,
        codec=args.codec,
        audio=args.audio,
        seconds=args.seconds,
        width=width,
        height=height,
        fps=args.fps,
        bitrate_kbps=args.bitrate_kbps,
    )
    cameras = [
        SimCamera(
            f"/cam{n}",
            clip,
            codec=args.codec,
            audio=args.audio,
            shared=not args.unshared,
            user=args.user,
            password=args.password,
        )
        for n in range(1, args.cameras + 1)
    ]
    server = SimCameraServer(args.port, cameras, log_path=args.log_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.start()
        for camera in cameras:
            print(server.url(camera.mount, args.user, args.password), flush=True)
        print("serving; Ctrl-C to stop", file=sys.stderr, flush=True)
        status = server.wait()
        print(server.stderr_tail(), file=sys.stderr)
        return status or 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
