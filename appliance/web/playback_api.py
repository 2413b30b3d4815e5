"""Playback API: a camera's timeline, HLS playlists, and the recorded files behind them.

Recorded files are reached only through their index id (`/recordings/<id>.mp4`), never by a
path in the URL, and the path from the index is checked to lie under the data
directory's recordings/ before it is served.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

from flask import Blueprint, Response, current_app, g, jsonify, request, send_file, url_for

from appliance.config.recorder import CAMERA_NAME
from appliance.core.errors import InvalidConfig
from appliance.playback.hls import FragmentCache, playlist
from appliance.playback.snapshot import snapshot_jpeg
from appliance.playback.timeline import timeline
from appliance.recorder.index import RecordingIndex
from appliance.web.security import check_camera

playback = Blueprint("playback", __name__)
MICROSECONDS = re.compile(r"^-?[0-9]{1,20}\Z")
MAX_TIME_US = 253_402_300_800 * 1_000_000   # the year 10000: no later time is meant
MAX_ROW_ID = 2 ** 63 - 1                     # SQLite's largest integer
_fragments = FragmentCache()


def _index() -> RecordingIndex:
    if "index" not in g:
        g.index = RecordingIndex(current_app.config["VIGIL_DATA_DIR"], readonly=True)
    return g.index


@playback.teardown_app_request
def _close_index(exc) -> None:
    index = g.pop("index", None)
    if index is not None:
        index.close()


def _time_arg(name: str, default_us: int | None = None) -> int:
    """Microseconds since the epoch, or an ISO 8601 time with offset."""
    text = request.args.get(name)
    if text is None:
        if default_us is None:
            raise InvalidConfig(f"the query needs `{name}`")
        return default_us
    if MICROSECONDS.match(text):   # ASCII digits only: int() refuses "²", "--5"
        if abs(int(text)) > MAX_TIME_US:
            raise InvalidConfig(f"`{name}`: {text} is outside the years 1 to 9999")
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidConfig(f"`{name}`: {text[:40]!r} is neither microseconds nor ISO "
                            "8601") from None
    if moment.tzinfo is None:
        raise InvalidConfig(f"`{name}`: give a UTC offset (e.g. 2026-11-23T14:00:00+01:00)")
    return int(moment.timestamp() * 1_000_000)


def _camera(name: str) -> str:
    if not CAMERA_NAME.match(name):
        raise InvalidConfig("not a camera name")
    check_camera(name)
    return name


@playback.get("/cameras/<name>/timeline")
def camera_timeline(name: str):
    now = int(time.time() * 1_000_000)
    start = _time_arg("from", now - 86_400_000_000)
    end = _time_arg("to", now)
    return jsonify(timeline(_index(), _camera(name), start, end, now_us=now))


@playback.get("/cameras/<name>/playback.m3u8")
def camera_playlist(name: str):
    start, end = _time_arg("from"), _time_arg("to")
    try:
        text = playlist(_index(), current_app.config["VIGIL_DATA_DIR"], _camera(name), start,
                        end, lambda seg: url_for("playback.recording", seg_id=seg.id),
                        _fragments)
    except ValueError as exc:
        raise InvalidConfig(str(exc)) from None
    return Response(text, mimetype="application/vnd.apple.mpegurl",
                    headers={"Cache-Control": "no-store"})


@playback.get("/cameras/<name>/snapshot.jpg")
def camera_snapshot(name: str):
    at = _time_arg("at") if "at" in request.args else None
    jpeg = snapshot_jpeg(_index(), current_app.config["VIGIL_DATA_DIR"], _camera(name), at)
    return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "no-store"})


@playback.get("/recordings/<int:seg_id>.mp4")
def recording(seg_id: int):
    if seg_id > MAX_ROW_ID:
        return jsonify(error="no such recording"), 404
    rows = _index().query("SELECT path, status, camera, bytes, start_us FROM segments "
                          "WHERE id = ?", (seg_id,))
    if not rows or rows[0]["status"] == "missing":
        return jsonify(error="no such recording"), 404
    check_camera(rows[0]["camera"])  # a viewer guessing another camera's ids gets 403
    root = (Path(current_app.config["VIGIL_DATA_DIR"]) / "recordings").resolve()
    path = (Path(current_app.config["VIGIL_DATA_DIR"]) / rows[0]["path"]).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return jsonify(error="no such recording"), 404
    rebased = _rebased_fragment(path, rows[0]["bytes"], rows[0]["start_us"])
    if rebased is not None:
        return rebased
    # conditional=True answers Range requests with 206 and the byte range (HLS fragments).
    return send_file(path, mimetype="video/mp4", conditional=True, max_age=3600)


EPOCH_US = 1_577_836_800 * 1_000_000  # 2020-01-01 UTC: the origin of served decode times
RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


def _rebased_fragment(path: Path, size: int, start_us: int) -> Response | None:
    """A Range request for exactly one fragment (what HLS players ask for) is answered
    with its decode times moved to wall-clock time, so consecutive files continue each
    other instead of each starting at zero. Anything else is served as stored."""
    match = RANGE.match(request.headers.get("Range", ""))
    if match is None:
        return None
    first, last = int(match.group(1)), int(match.group(2))
    try:
        frags = _fragments.get(path, size)
    except (OSError, ValueError):
        return None
    frag = frags.fragment_at(first, last - first + 1)
    if frag is None:
        return None
    with open(path, "rb") as src:
        src.seek(first)
        data = src.read(frag.size)
    if len(data) != frag.size:
        return None
    resp = Response(frags.rebased(frag, data, start_us, EPOCH_US), status=206,
                    mimetype="video/mp4")
    resp.headers["Content-Range"] = f"bytes {first}-{last}/{path.stat().st_size}"
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp
