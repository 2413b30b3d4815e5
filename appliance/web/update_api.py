"""Firmware updates through the web API (admin only).

    GET  /api/v1/update          slots, running and installed versions, the trial, results
    POST /api/v1/update/bundle   the bundle as the raw body (application/octet-stream),
                                 streamed to the data disk, then installed by vigil-hwd
                                 as a job: 202 with the job
    GET  /api/v1/update/job      the install's progress (percent, phase, error)

The browser shows the upload's own progress; the install's comes from the job. The body
is checked here only for size and room on the disk: the bundle's signature, compatible
and version are RAUC's and vigil-hwd's to check, and a refusal comes back as the job's
error with nothing written to any slot.

A refusal known before or while the body is read (no data disk, no room for it, a wrong
type, the disk filling up or failing mid-way) is answered only after the rest of the body
has been read and dropped: gunicorn streams the body, and an answer sent while the client
is still sending reaches neither a browser nor urllib (they see the connection break off
mid-upload, not the reason). Answered unread (security.py): a body over 1.5 GiB (not worth
the wait), and a request without a session or CSRF token (not worth a thread).

A bundle is hundreds of megabytes, sent from a laptop on Wi-Fi or over a VPN: the body may
pause for longer than the server's send timeout (https_server.SEND_TIMEOUT, which also
bounds each read) without anything being wrong, so an upload waits up to
`UPLOAD_STALL_SECONDS` for its next bytes. A client that stops sending for longer, or goes
away, gets no answer (there is no one to read it): the log says how far it came.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import time
from pathlib import Path

from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import ClientDisconnected

from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.storage.retention.overrides import retention_in_force
from appliance.storage.volume import check_data_dir
from appliance.web.security import accounts, client_address, require_role
from appliance.web.services import hwd, paths

log = logging.getLogger(__name__)
update = Blueprint("update", __name__)

CHUNK = 1 << 20
NO_ROOM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
SPARE_BYTES = 512 << 20      # left free on the data disk for recording while uploading
UPLOAD_STALL_SECONDS = 120   # an upload's body may pause this long (the module's docstring)


class UploadBroken(Exception):
    """The client stopped sending the body, or went away, after `received` bytes."""

    def __init__(self, received: int, size: int, cause: Exception) -> None:
        super().__init__(f"the upload broke off after {received} of {size} bytes: {cause}")


def _upload_dir():
    """The upload folder on the data disk: the same rule as the recorder's and exports'
    (the data volume's marker, unless storage.allow_boot_media)."""
    data = current_app.config["VIGIL_DATA_DIR"]
    volume = check_data_dir(data, retention_in_force(paths().config).settings.allow_boot_media)
    if not volume.ok:
        raise FailedPrecondition("no data disk to receive the bundle: initialise a data disk "
                                 f"first, or install from a USB stick ({volume.detail})")
    path = data / "update-upload"
    path.mkdir(mode=0o750, exist_ok=True)
    return path


@update.get("/update")
@require_role("admin")
def status():
    return jsonify(hwd().call("update.status"))


@update.get("/update/job")
@require_role("admin")
def job():
    return jsonify(hwd().call("update.job"))


def _drop_body() -> None:
    """Read the rest of the request body and throw it away (see the module's docstring)."""
    left = request.content_length or 0
    while left > 0 and (chunk := request.stream.read(min(CHUNK, left))):
        left -= len(chunk)


def _checked_upload() -> tuple[Path, int]:
    """The upload folder and the body's size, or the reason the body cannot be taken."""
    size = request.content_length
    if not size:
        raise InvalidConfig("send the bundle as the request body, with its Content-Length")
    folder = _upload_dir()
    if shutil.disk_usage(folder).free < size + SPARE_BYTES:
        raise FailedPrecondition("not enough free space on the data disk for this bundle")
    return folder, size


def _copy_body(out, size: int) -> int:
    """The body into `out` and onto the disk (fsynced); the bytes received."""
    received = 0
    try:
        while chunk := request.stream.read(min(CHUNK, size - received)):
            out.write(chunk)
            received += len(chunk)
            if received >= size:
                break
        out.flush()
        os.fsync(out.fileno())
    except (TimeoutError, ConnectionError, ClientDisconnected) as exc:
        raise UploadBroken(received, size, exc) from exc
    except OSError as exc:
        if exc.errno in NO_ROOM_ERRNOS:
            raise FailedPrecondition(f"the data disk has no more room for the bundle "
                                     f"({exc.strerror} after {received} of {size} bytes); "
                                     f"nothing was installed") from exc
        raise
    return received


def _receive(folder: Path, size: int) -> str:
    """The body written to the upload folder under a new name, which it returns; no
    partial file is left behind."""
    for old in folder.glob("*.raucb.part"):
        old.unlink(missing_ok=True)
    name = f"upload-{int(time.time() * 1000)}.raucb"
    partial = folder / (name + ".part")
    try:
        with open(partial, "wb") as out:
            received = _copy_body(out, size)
        if received != size:
            raise InvalidConfig(f"the upload stopped after {received} of {size} bytes")
        os.replace(partial, folder / name)
    finally:
        partial.unlink(missing_ok=True)
    return name


@update.post("/update/bundle")
@require_role("admin")
def upload():
    sock = request.environ.get("gunicorn.socket")
    if sock is not None:
        sock.settimeout(UPLOAD_STALL_SECONDS)
    if request.mimetype != "application/octet-stream":
        _drop_body()
        return jsonify(error="send the bundle file itself as application/octet-stream"), 415
    try:
        folder, size = _checked_upload()
        name = _receive(folder, size)
    except UploadBroken as exc:
        log.warning("update upload from %s: %s", client_address(), exc)
        return jsonify(error=str(exc)), 408
    except Exception:
        _drop_body()            # the rest of it, then the reason (the module's docstring)
        raise
    accounts().audit(g.session.user.username, "update_uploaded", f"{size} bytes", client_address())
    try:
        started = hwd().call("update.apply", file=name)
    except Exception:
        (folder / name).unlink(missing_ok=True)
        raise
    return jsonify(started), 202
