"""Live view API: a camera's live stream as one chunked fragmented-MP4 response, for MSE.

`GET /api/v1/cameras/<name>/live.mp4` answers only once the camera has sent its first
keyframe (or with 503/429/404 and a JSON error), then streams the init segment and one
fragment per frame, chunked, until the viewer leaves, is too slow, the camera drops or
`live.max_session_seconds` passes. `Content-Type` carries the RFC 6381 codec string
(`video/mp4; codecs="avc1.4D401E"`) that the page needs for its SourceBuffer.

The app is configured with `VIGIL_LIVE_URL_FOR_CAMERA` (a callable: camera name to the
RTSP URL to show, the sub stream when known; None or KeyError for an unknown camera) and
optionally `VIGIL_LIVE_SETTINGS` (a mapping of `live.*` settings or a LiveSettings).

Waitress (3.x) writes each chunk from the worker thread straight to the socket
(`send_bytes` is 1), so nothing sits in a server buffer; what the client does not take
piles up in the channel's output buffer, which is watched here (docs/design/live.md).
Gunicorn (the box's HTTPS server, web/https_server.py) writes from this thread with a
blocking send instead: a client that stops reading blocks the `yield`, the hub drops the
viewer after `viewer_max_delay`, and a send timeout just above that ends the response and
frees the thread (`_bound_blocking_send`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Iterator

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from appliance.config.recorder import CAMERA_NAME
from appliance.core.errors import InvalidConfig, Unavailable
from appliance.playback.live import LiveHub, LiveSettings, Viewer, build_live_settings
from appliance.web.security import COOKIE, check_camera

URL_FOR_CAMERA = "VIGIL_LIVE_URL_FOR_CAMERA"
SETTINGS = "VIGIL_LIVE_SETTINGS"
EXTENSION = "vigil_live"
POLL_SECONDS = 1.0
SESSION_RECHECK_SECONDS = 30.0  # a logout or a revoked camera ends a running stream

live = Blueprint("live", __name__)
_hub_lock = threading.Lock()


def live_hub(app: Flask) -> LiveHub:
    """The app's LiveHub, made on first use from the app config."""
    with _hub_lock:
        hub = app.extensions.get(EXTENSION)
        if hub is None:
            url_for_camera = app.config.get(URL_FOR_CAMERA)
            if url_for_camera is None:
                raise Unavailable("live view is not configured in this process "
                                  "(no camera URLs)")
            hub = LiveHub(url_for_camera, build_live_settings(app.config.get(SETTINGS)))
            app.extensions[EXTENSION] = hub
        return hub


@live.get("/cameras/<name>/live.mp4")
def camera_live(name: str):
    if not CAMERA_NAME.match(name):
        raise InvalidConfig("not a camera name")
    check_camera(name)
    hub = live_hub(current_app)
    if request.method == "HEAD":
        # No viewer: waitress would iterate the endless body without sending it, holding
        # a thread and a viewer slot with no client to notice leaving.
        return Response(status=200, content_type="video/mp4", headers={"Cache-Control": "no-store"})
    try:
        viewer = hub.subscribe(name)
    except KeyError:
        return jsonify(error="no such camera"), 404
    try:
        init, codec = viewer.wait_ready(hub.settings.connect_timeout +
                                        hub.settings.keyframe_timeout)
    except BaseException:
        viewer.close()
        raise
    _bound_blocking_send(request.environ, hub.settings)
    body = _stream(viewer, init, _unsent_bytes(request.environ), hub.settings,
                   _session_check(name))
    return Response(body, status=200, content_type=f'video/mp4; codecs="{codec}"', headers={
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "X-Accel-Buffering": "no",  # a reverse proxy in front must not buffer it either
    })


@live.get("/live")
def live_status():
    """Cameras with a live connection now: viewers, counters, delivery latency."""
    if current_app.config.get(URL_FOR_CAMERA) is None:
        return jsonify(configured=False, cameras={})
    user = g.session.user  # a viewer sees only the cameras granted to them
    stats = {name: value for name, value in live_hub(current_app).stats().items()
             if user.can_view(name)}
    return jsonify(configured=True, cameras=stats)


def _session_check(camera: str) -> Callable[[], bool]:
    """Is the session that opened the stream still valid and allowed to see the camera?"""
    accounts = current_app.config.get("VIGIL_ACCOUNTS")
    token = request.cookies.get(COOKIE)
    if accounts is None:
        return lambda: True

    def allowed() -> bool:
        session = accounts.session(token)
        return session is not None and session.user.can_view(camera)
    return allowed


def _stream(viewer: Viewer, init: bytes, unsent: Callable[[], int], settings: LiveSettings,
            allowed: Callable[[], bool]) -> Iterator[bytes]:
    """The response body. Runs in the server's worker thread; ends when the viewer does.

    A `yield` returns once waitress has handed the chunk to the socket, or kept what the
    socket would not take. What it keeps is what the client has not read yet: when the
    oldest of that waited longer than `viewer_max_delay`, or there is more than
    `viewer_backlog_bytes` of it, the viewer is too slow and its response ends.
    """
    started = time.monotonic()
    deadline = started + settings.max_session_seconds
    recheck = started + SESSION_RECHECK_SECONDS
    written = 0
    pending: deque[tuple[int, float]] = deque()  # (bytes written up to a chunk, when)
    try:
        yield init
        written += len(init)
        pending.append((written, started))
        while True:
            frags = viewer.take(POLL_SECONDS)
            if frags:
                data = b"".join(f.data for f in frags)
                handed = time.monotonic()
                yield data
                written += len(data)
                pending.append((written, handed))
                viewer.delivered(frags)
            elif viewer.closed:
                return
            now = time.monotonic()
            if now > deadline:
                return
            if now > recheck:
                if not allowed():
                    return
                recheck = now + SESSION_RECHECK_SECONDS
            held = unsent()
            while pending and pending[0][0] <= written - held:
                pending.popleft()  # the client has that chunk (or the kernel has)
            if held > settings.viewer_backlog_bytes or \
                    (held and pending and now - pending[0][1] > settings.viewer_max_delay):
                viewer.drop(f"too slow: {held // 1024} KiB not taken by the client", slow=True)
                return
    finally:
        viewer.close()


def _bound_blocking_send(environ: dict, settings: LiveSettings) -> None:
    """Under gunicorn, a send that cannot progress for longer than a viewer may lag (plus
    one poll) raises in the server and ends this response: its thread is freed as soon as
    the hub has dropped the viewer, not after the server's general send timeout."""
    sock = environ.get("gunicorn.socket")
    if sock is not None and hasattr(sock, "settimeout"):
        sock.settimeout(settings.viewer_max_delay + POLL_SECONDS)


def _unsent_bytes(environ: dict) -> Callable[[], int]:
    """How much of this response the server still holds unsent, where it can tell.

    Waitress exposes its channel only through the `waitress.client_disconnected` hook (a
    bound method of the channel); `total_outbufs_len` is what the client has not taken
    yet. Pinned waitress (3.0.2) and covered by the slow-viewer test; any other server
    falls back to the viewer's own queue bound.
    """
    channel = getattr(environ.get("waitress.client_disconnected"), "__self__", None)
    if channel is None or not isinstance(getattr(channel, "total_outbufs_len", None), int):
        return lambda: 0
    return lambda: channel.total_outbufs_len
