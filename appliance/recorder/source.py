"""Opening a camera's RTSP stream with PyAV, and telling why it failed.

The failure class decides what the camera's ingest does next:
* `probe`: nothing answers at the address (refused, no route). Check cheaply with a TCP
  connect every `probe_interval` and reconnect as soon as the port accepts, so recording
  resumes within about a second of the camera coming back, without RTSP storms.
* `backoff`: something answered but the stream failed; jittered exponential backoff.
* `auth`: the camera refused the credentials; slow fixed retries, never a storm.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import av

from appliance.recorder.index import GapCause

DEFAULT_PORTS = {"rtsp": 554, "rtsps": 322}
NO_ROUTE = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN}


@dataclass(frozen=True)
class Failure:
    cause: str    # a GapCause value
    state: str    # camera state shown to the owner
    detail: str   # one human sentence, no credentials
    retry: str    # "probe" | "backoff" | "auth"


class StreamFailure(Exception):
    """Raised inside the ingest loop with an already classified failure."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


def open_stream(url: str, connect_timeout: float, read_timeout: float) -> av.container.InputContainer:
    """RTSP over TCP, with a deadline on the handshake and on every read afterwards.

    Reads are bounded by libav's own socket timeout (the RTSP `timeout` option, in C).
    PyAV's `timeout=` deadline guards the handshake only: it works through a Python
    interrupt callback that libav calls very often, which measurably costs CPU per
    stream when it also guards every read (bench/README.md).
    """
    options = {
        "rtsp_transport": "tcp",
        "rtsp_flags": "prefer_tcp",
        "timeout": str(int(read_timeout * 1_000_000)),
        "allowed_media_types": "video+audio",
        "analyzeduration": "2000000",
    }
    return av.open(url, options=options, timeout=(connect_timeout, None))


def classify(exc: BaseException, elapsed: float, timeout: float) -> Failure:
    """Map an exception from opening or reading a stream to a Failure."""
    if isinstance(exc, StreamFailure):
        return exc.failure
    if isinstance(exc, av.error.HTTPUnauthorizedError):
        return Failure(GapCause.AUTH_FAILED, "auth_failed",
                       "the camera refused the user name or password (401)", "auth")
    if isinstance(exc, av.error.HTTPForbiddenError):
        return Failure(GapCause.AUTH_FAILED, "auth_failed",
                       "the camera denied access to this stream (403)", "auth")
    if isinstance(exc, av.error.HTTPNotFoundError):
        return Failure(GapCause.STREAM_ERROR, "retrying",
                       "the camera has no stream at this path (404)", "backoff")
    if isinstance(exc, OSError) and exc.errno in NO_ROUTE:
        return Failure(GapCause.UNREACHABLE, "unreachable",
                       f"nothing answers at the camera's address ({exc.strerror})", "probe")
    if isinstance(exc, socket.gaierror):
        return Failure(GapCause.UNREACHABLE, "unreachable",
                       "the camera's host name does not resolve", "probe")
    if elapsed >= 0.95 * timeout or isinstance(exc, (TimeoutError, av.error.ExitError)):
        return Failure(GapCause.UNREACHABLE, "unreachable",
                       f"the camera did not answer within {timeout:g} s", "backoff")
    if isinstance(exc, av.error.InvalidDataError):
        return Failure(GapCause.STREAM_ERROR, "retrying",
                       "the camera sent data that is not a valid RTSP stream", "backoff")
    if isinstance(exc, (EOFError, av.error.EOFError)):
        return Failure(GapCause.STREAM_ENDED, "retrying", "the camera ended the stream", "backoff")
    if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
        return Failure(GapCause.STREAM_ENDED, "retrying",
                       "the camera closed the connection", "backoff")
    name = type(exc).__name__
    return Failure(GapCause.STREAM_ERROR, "retrying", f"stream error ({name}: {exc})", "backoff")


def camera_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 554)


def port_accepts(host: str, port: int, timeout: float) -> bool:
    """A cheap liveness check: does the camera's RTSP port accept a TCP connection?"""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
