"""Export through the web API: background export jobs on the data disk, their progress,
cancel, and the download of the finished MP4 files and the signed manifest.

The web layer only drives `appliance.playback.export.ExportJob` (the same job as
`nvr export`): it chooses where the output goes, `<data>/exports/<export id>/`, on the
data disk beside the recordings, never on the SD card (the data directory must carry the
data volume marker unless `storage.allow_boot_media`), signs with the device key the
composition root names (`WebPaths.device_key`), and keeps at most a few jobs running at
once (`VIGIL_EXPORT_MAX_RUNNING`, 2): each one reads and writes the disk the recorder is
writing to. `VIGIL_EXPORT_BYTES_PER_S` (0: unlimited) paces how fast a job reads the
recordings, for the same reason.

Jobs live in this process (the web server is one process); what is on disk outlives it:
at the first request after a restart every finished export is listed again from its
manifest, and an export that was running when the process stopped (its hidden
`.<id>.partial-<id>` directory) is removed together with its retention protection and
listed as failed. Downloads are reached by an export id and a file name that must be one
of the export's own files (from its manifest), never by a path.

Roles: operators and admins (a viewer may not export). Starting, cancelling and deleting
are audited; see docs/design/export.md, "The web API".
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, send_file, url_for

from appliance.config.recorder import CAMERA_NAME
from appliance.core.device_key import load_or_create
from appliance.core.errors import (FailedPrecondition, InvalidConfig, ResourceExhausted,
                                   VigilError)
from appliance.playback.export import MAX_RANGE_US, ExportJob, ExportState, new_export_id
from appliance.playback.manifest import MANIFEST_NAME, SAFE_FILE_NAME, SIGNATURE_NAME, iso
from appliance.recorder.index import INDEX_NAME, RecordingIndex
from appliance.storage.retention.overrides import retention_in_force
from appliance.storage.volume import check_data_dir
from appliance.web.security import accounts, check_camera, client_address, require_role
from appliance.web.services import paths, required

log = logging.getLogger(__name__)

exports = Blueprint("exports", __name__)

EXPORTS_DIR = "exports"          # under the data directory: on the data disk
MAX_RUNNING = 2                  # jobs running at once (VIGIL_EXPORT_MAX_RUNNING)
MAX_CAMERAS = 32                 # the largest licence
CANCEL_WAIT_S = 5.0              # DELETE waits this long for a cancelled job to stop
EXPORT_ID = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}\Z")  # playback.export.new_export_id
PARTIAL = re.compile(r"^\.(\d{8}T\d{6}Z-[0-9a-f]{6})\.partial-\1\Z")
FIELDS = ("cameras", "start", "end")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST_US = (datetime(2200, 1, 1, tzinfo=timezone.utc) - EPOCH) // timedelta(microseconds=1)
TIME_HINT = "ISO 8601 with a UTC offset, e.g. 2026-11-23T14:00:00+01:00 or 2026-11-23T13:00:00Z"
RUNNING = "running"  # what the API calls a job that is queued or running
NOTE_GAP_US = 1_000_000  # shorter holes (at the ends of a range) are in the manifest only


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- the jobs --------------------------------------------------------------------------
@dataclass
class WebExport:
    """One export as the API shows it: a job of this process while it runs, then (or when
    found on disk after a restart) its outcome and a summary of its manifest."""
    export_id: str
    cameras: list[str]
    start_us: int
    end_us: int
    started_by: str | None = None
    job: ExportJob | None = None       # while running (and until its outcome is copied)
    source_bytes: int = 0
    state: str = ExportState.DONE      # the outcome, once `job` is None
    error: str | None = None
    summary: dict[str, Any] | None = None  # of the manifest (the MP4 files, notes)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    began: float = 0.0

    @property
    def running(self) -> bool:
        return self.job is not None

    @property
    def current_state(self) -> str:
        return RUNNING if self.job is not None else self.state

    def file_names(self) -> list[str]:
        """The export's own files (what may be downloaded), from its manifest."""
        if self.job is not None or self.state != ExportState.DONE or self.summary is None:
            return []
        return [f["name"] for f in self.summary["files"]] + [MANIFEST_NAME, SIGNATURE_NAME]


def summarise(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of a manifest (a month's manifest lists ~45,000 segments per
    camera: only this much is kept in memory)."""
    files, notes, protections = [], [], []
    for cam in manifest.get("cameras") or []:
        camera = cam.get("camera")
        for f in cam.get("files") or []:
            if isinstance(f.get("name"), str) and SAFE_FILE_NAME.match(f["name"]):
                files.append({"name": f["name"], "camera": camera, "bytes": f.get("bytes"),
                              "start": f.get("start"), "end": f.get("end")})
        gaps = [g for g in cam.get("gaps") or []
                if (g.get("end_us") or 0) - (g.get("start_us") or 0) >= NOTE_GAP_US]
        for gap in gaps[:20]:
            notes.append(f"{camera}: no footage {gap.get('start')} .. {gap.get('end')} "
                         f"({', '.join(gap.get('causes') or [])})")
        if cam.get("audio_dropped"):
            notes.append(f"{camera}: audio not exported: {cam['audio_dropped']}")
        if cam.get("protection_id") is not None:
            protections.append(cam["protection_id"])
    return {"files": files, "notes": notes, "protection_ids": protections,
            "created": manifest.get("created"),
            "fingerprint": (manifest.get("appliance") or {}).get("fingerprint")}


class ExportService:
    """The export jobs of one web app: start (with the running limit), list, cancel,
    delete, and the path of a file to download."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / EXPORTS_DIR
        self._lock = threading.Lock()
        self._exports: dict[str, WebExport] = {}
        self._restore()

    # --- after a restart ----------------------------------------------------------------
    def _restore(self) -> None:
        """Finished exports from their manifests; partial ones of a stopped process removed."""
        if not self.root.is_dir() or self.root.is_symlink():
            return
        for path in sorted(self.root.iterdir()):
            partial = PARTIAL.match(path.name)
            if partial:
                self._interrupted(partial.group(1), path)
            elif EXPORT_ID.match(path.name) and path.is_dir() and not path.is_symlink():
                self._exports[path.name] = self._found(path)

    def _found(self, path: Path) -> WebExport:
        try:
            manifest = json.loads((path / MANIFEST_NAME).read_bytes())
            if not isinstance(manifest, dict) or manifest.get("export_id") != path.name:
                raise ValueError("it is not this export's manifest")
            requested = manifest["range"]["requested"]
            cameras = [str(c["camera"]) for c in manifest["cameras"]]
            return WebExport(path.name, cameras, int(requested["start_us"]),
                             int(requested["end_us"]), summary=summarise(manifest))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            return WebExport(path.name, [], 0, 0, state=ExportState.FAILED,
                             error=f"{MANIFEST_NAME} of this export cannot be read ({exc}); "
                             "its files are not offered for download")

    def _interrupted(self, export_id: str, path: Path) -> None:
        """An export this process (or an earlier one) did not finish: what ExportJob does
        on failure, done now: remove its partial output and its protection rows."""
        shutil.rmtree(path, ignore_errors=True)
        released = 0
        try:
            if (self.data_dir / INDEX_NAME).is_file():
                index = RecordingIndex(self.data_dir)
                try:
                    for protection in index.protections():
                        if protection.reason == f"export {export_id}":
                            released += index.unprotect(protection.id)
                finally:
                    index.close()
        except (sqlite3.Error, VigilError) as exc:
            log.error("export=%s: its protection rows could not be released (%s); "
                      "`nvr protect --list` shows them", export_id, exc)
        log.warning("export=%s was interrupted by a restart of the web service; partial output "
                    "removed, %d protection(s) released", export_id, released)
        self._exports[export_id] = WebExport(
            export_id, [], 0, 0, state=ExportState.FAILED,
            error="the web service stopped while this export was running; its partial files "
                  "were removed (start it again)")

    # --- jobs ---------------------------------------------------------------------------
    def all(self) -> list[WebExport]:
        with self._lock:
            return sorted(self._exports.values(), key=lambda e: e.export_id, reverse=True)

    def get(self, export_id: str) -> WebExport | None:
        if not EXPORT_ID.match(export_id):
            return None
        with self._lock:
            return self._exports.get(export_id)

    def start(self, cameras: list[str], start_us: int, end_us: int, *, user: str, key,
              serial: str, max_running: int, bytes_per_s: float,
              min_free_percent: float) -> WebExport:
        """Check what can be checked at once (words, not a failed job), then run the job."""
        source_bytes = self._check_footage(cameras, start_us, end_us)
        self._check_space(source_bytes, min_free_percent)
        if self.root.is_symlink():
            raise FailedPrecondition(f"{self.root} is a symbolic link; exports are written only "
                                     "onto the data disk itself")
        self.root.mkdir(exist_ok=True)
        index = RecordingIndex(self.data_dir)  # the job's own (it writes protection rows)
        try:
            with self._lock:
                entry = self._add(index, cameras, start_us, end_us, user=user, key=key,
                                  serial=serial, max_running=max_running,
                                  bytes_per_s=bytes_per_s, source_bytes=source_bytes)
                entry.thread.start()  # under the lock: a cancel always finds it started
        except BaseException:
            index.close()
            raise
        return entry

    def _add(self, index: RecordingIndex, cameras: list[str], start_us: int, end_us: int, *,
             user: str, key, serial: str, max_running: int, bytes_per_s: float,
             source_bytes: int) -> WebExport:
        """The new job in the list, unless as many as allowed are running (under the lock)."""
        running = sum(1 for e in self._exports.values() if e.running)
        if running >= max_running:
            raise ResourceExhausted(
                f"{running} exports are already running (at most {max_running} at once, so "
                "that recording keeps its disk time); wait for one to finish or cancel one")
        export_id = new_export_id(time.time())
        while export_id in self._exports:
            export_id = new_export_id(time.time())
        job = ExportJob(index, self.data_dir, cameras, start_us, end_us, self.root / export_id,
                        key=key, serial=serial, export_id=export_id)
        entry = WebExport(export_id, job.cameras, start_us, end_us, started_by=user, job=job,
                          source_bytes=source_bytes)
        if bytes_per_s > 0:
            job.on_progress = lambda fraction: self._pace(entry, fraction, bytes_per_s)
        entry.thread = threading.Thread(target=self._run, args=(entry, index),
                                        name=f"web-export-{export_id}", daemon=True)
        self._exports[export_id] = entry
        return entry

    def _check_footage(self, cameras: list[str], start_us: int, end_us: int) -> int:
        """The bytes of recordings the export will read; refuses unknown cameras and a
        range without footage with the reason."""
        if not (self.data_dir / INDEX_NAME).is_file():
            raise FailedPrecondition(f"there are no recordings in {self.data_dir} (no recording "
                                     "index): is the data disk mounted?")
        index = RecordingIndex(self.data_dir, readonly=True)
        try:
            known = set(index.cameras())
            unknown = [c for c in cameras if c not in known]
            if unknown:
                raise InvalidConfig(f"camera {', '.join(unknown)} has no recordings on this box")
            readable = [seg for camera in cameras for seg in index.segments(camera, start_us,
                                                                            end_us)
                        if seg.status != "missing"]
        finally:
            index.close()
        if not readable:
            raise FailedPrecondition(f"no footage of {', '.join(cameras)} between "
                                     f"{iso(start_us)} and {iso(end_us)}")
        return sum(seg.bytes for seg in readable)

    def _check_space(self, source_bytes: int, min_free_percent: float) -> None:
        """An export is about as large as what it reads. Written below the low-water mark,
        it would make retention delete older footage to make room, so it is refused."""
        usage = shutil.disk_usage(self.data_dir)
        room = usage.free - usage.total * min_free_percent / 100
        if source_bytes + (1 << 20) > room:
            raise FailedPrecondition(
                f"this export needs about {source_bytes / 1e6:.0f} MB and the data disk has "
                f"{max(0.0, room) / 1e6:.0f} MB free above its low-water mark "
                f"({min_free_percent:g} %); export a shorter range or delete old exports")

    @staticmethod
    def _pace(entry: WebExport, fraction: float, bytes_per_s: float) -> None:
        """Called from the job's thread: wait until reading `fraction` of the source at
        `bytes_per_s` is due (a cancel ends the wait at once)."""
        due = entry.began + fraction * entry.source_bytes / bytes_per_s
        delay = due - time.monotonic()
        if delay > 0:
            entry.stop.wait(min(delay, 5.0))

    @staticmethod
    def _run(entry: WebExport, index: RecordingIndex) -> None:
        job = entry.job
        entry.began = time.monotonic()
        try:
            job.run()
        finally:
            index.close()
            # The outcome first, then drop the job: a reader sees either "running" or
            # the complete outcome, never "done" without its files.
            entry.summary = summarise(job.manifest) if job.manifest is not None else None
            entry.error = job.error
            entry.state = job.state if job.state in ExportState.FINISHED else ExportState.FAILED
            entry.job = None

    def cancel(self, entry: WebExport) -> bool:
        """Ask a running job to stop and wait a little for it; True once it has ended."""
        entry.stop.set()
        job = entry.job
        if job is not None:
            job.cancel()
        if entry.thread is not None:
            entry.thread.join(CANCEL_WAIT_S)
        return not entry.running

    def delete(self, entry: WebExport) -> None:
        """Forget a finished export and remove its directory (the footage it was made from
        stays protected: see the answer's `protection_ids`)."""
        with self._lock:
            if entry.running:
                raise FailedPrecondition("the export is running; cancel it first")
            directory = self.root / entry.export_id
            if directory.is_symlink():
                raise FailedPrecondition(f"{directory} is a symbolic link; not followed")
            if directory.exists():
                shutil.rmtree(directory)
            self._exports.pop(entry.export_id, None)

    def file(self, entry: WebExport, name: str) -> Path | None:
        """The path of one of the export's own files, or None."""
        if name not in entry.file_names():
            return None
        directory = (self.root / entry.export_id).resolve()
        path = (directory / name).resolve()
        if path.parent != directory or not path.is_file():
            return None
        return path


def service() -> ExportService:
    app = current_app._get_current_object()
    with _services_lock:
        found = app.extensions.get("vigil_exports")
        if found is None:
            found = app.extensions["vigil_exports"] = ExportService(
                app.config["VIGIL_DATA_DIR"])
        return found


_services_lock = threading.Lock()


# --- what the API shows ----------------------------------------------------------------
def _percent(entry: WebExport) -> int:
    job = entry.job
    if job is not None:
        return min(99, int(job.progress * 100))
    return 100 if entry.state == ExportState.DONE else 0


def export_json(entry: WebExport) -> dict[str, Any]:
    summary = entry.summary or {}
    files = []
    directory = service().root / entry.export_id
    videos = {f["name"]: f for f in summary.get("files") or []}
    for name in entry.file_names():
        item: dict[str, Any] = {
            "name": name,
            "kind": "video" if name in videos else
                    "manifest" if name == MANIFEST_NAME else "signature",
            "url": url_for("exports.download", export_id=entry.export_id, name=name)}
        if name in videos:
            item.update(videos[name])
        else:
            try:
                item["bytes"] = (directory / name).stat().st_size
            except OSError:
                item["bytes"] = None
        files.append(item)
    job = entry.job
    return {
        "id": entry.export_id, "state": entry.current_state, "progress": _percent(entry),
        "cameras": entry.cameras, "start": iso(entry.start_us) if entry.end_us else None,
        "end": iso(entry.end_us) if entry.end_us else None, "started_by": entry.started_by,
        "created": summary.get("created"),
        "error": job.error if job is not None else entry.error, "files": files,
        "notes": summary.get("notes") or [], "fingerprint": summary.get("fingerprint"),
        "protection_ids": summary.get("protection_ids") or [],
        "url": url_for("exports.show", export_id=entry.export_id),
    }


# --- the request -----------------------------------------------------------------------
def _moment(data: dict, key: str) -> int:
    value = data.get(key)
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidConfig(f"`{key}`: give a time as text, {TIME_HINT}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidConfig(f"`{key}`: {_short(value)} is not a time; {TIME_HINT}") from None
    if moment.tzinfo is None:
        raise InvalidConfig(f"`{key}`: give the UTC offset ({TIME_HINT})")
    us = (moment - EPOCH) // timedelta(microseconds=1)
    if not 0 <= us < LATEST_US:
        raise InvalidConfig(f"`{key}`: {_short(value)} is not a time this box can have "
                            "recorded (1970 to 2199)")
    return us


def _cameras(data: dict) -> list[str]:
    cameras = data.get("cameras")
    if not isinstance(cameras, list) or not cameras:
        raise InvalidConfig("`cameras`: give a list of one or more camera names, e.g. [\"cam1\"]")
    if len(cameras) > MAX_CAMERAS:
        raise InvalidConfig(f"`cameras`: at most {MAX_CAMERAS} cameras per export")
    for name in cameras:
        if not isinstance(name, str) or not CAMERA_NAME.match(name):
            raise InvalidConfig(f"`cameras`: {_short(name)} is not a camera name (letters, "
                                "digits, _ and -, up to 32)")
    cameras = list(dict.fromkeys(cameras))
    for name in cameras:
        check_camera(name)
    return cameras


def parse_export_request(data: Any) -> tuple[list[str], int, int]:
    """{"cameras": [names], "start": ISO 8601, "end": ISO 8601}, checked as ExportJob
    checks its arguments, before anything is created."""
    if not isinstance(data, dict):
        raise InvalidConfig('the body must be a JSON object: {"cameras": ["cam1"], '
                            '"start": "...", "end": "..."}')
    unknown = sorted(_short(k) for k in data if k not in FIELDS)
    if unknown:
        raise InvalidConfig(f"unknown field(s) {', '.join(unknown[:5])}; an export takes "
                            f"{', '.join(FIELDS)}")
    cameras = _cameras(data)
    start_us, end_us = _moment(data, "start"), _moment(data, "end")
    if end_us <= start_us:
        raise InvalidConfig("the end of the range must be after its start")
    if end_us - start_us > MAX_RANGE_US:
        raise InvalidConfig(f"the range is {(end_us - start_us) / 86_400e6:.1f} days; at most "
                            f"{MAX_RANGE_US / 86_400e6:g} days per export")
    return cameras, start_us, end_us


def _data_on_data_disk(data_dir: Path, allow_boot_media: bool) -> None:
    volume = check_data_dir(data_dir, allow_boot_media)
    if not volume.ok:
        raise FailedPrecondition(f"exports are written to the data disk: {volume.detail}")


def _serial() -> str:
    factory = current_app.config.get("VIGIL_LICENCE")
    if factory is None:
        return "unknown"
    try:
        return str(factory().serial)
    except (VigilError, OSError, ValueError):
        return "unknown"


def _not_found(what: str = "no export with that id"):
    return jsonify(error=what), 404


def _audit(what: str, detail: str) -> None:
    accounts().audit(g.session.user.username, what, detail[:500], client_address())


# --- routes ----------------------------------------------------------------------------
@exports.post("/exports")
@require_role("operator")
def start():
    """Body {"cameras": [...], "start": ISO 8601, "end": ISO 8601} -> 202 and the job."""
    try:
        cameras, start_us, end_us = parse_export_request(request.get_json(silent=True))
        data_dir = Path(current_app.config["VIGIL_DATA_DIR"])
        settings = retention_in_force(paths().config).settings
        _data_on_data_disk(data_dir, settings.allow_boot_media)
        key = load_or_create(required("device_key"))
        entry = service().start(
            cameras, start_us, end_us, user=g.session.user.username, key=key,
            serial=_serial(),
            max_running=int(current_app.config.get("VIGIL_EXPORT_MAX_RUNNING", MAX_RUNNING)),
            bytes_per_s=float(current_app.config.get("VIGIL_EXPORT_BYTES_PER_S", 0) or 0),
            min_free_percent=settings.min_free_percent)
    except VigilError as exc:
        if isinstance(exc, (ResourceExhausted, FailedPrecondition)):
            _audit("export_refused", str(exc))
        raise
    _audit("export_started", f"{entry.export_id}: {', '.join(cameras)} {iso(start_us)} .. "
                             f"{iso(end_us)}")
    body = export_json(entry)
    return jsonify(body), 202, {"Location": body["url"]}


@exports.get("/exports")
@require_role("operator")
def listing():
    """Every export (newest first), the cameras with recordings, and the limits."""
    data_dir = Path(current_app.config["VIGIL_DATA_DIR"])
    cameras: list[str] = []
    if (data_dir / INDEX_NAME).is_file():
        index = RecordingIndex(data_dir, readonly=True)
        try:
            cameras = sorted(index.cameras())
        finally:
            index.close()
    key_path = paths().device_key
    fingerprint = None
    if key_path is not None and Path(key_path).is_file():  # made at the first export
        try:
            fingerprint = load_or_create(key_path).fingerprint
        except VigilError as exc:
            log.error("the device key cannot be read: %s", exc)
    return jsonify(exports=[export_json(e) for e in service().all()], cameras=cameras,
                   fingerprint=fingerprint,
                   limits={"running": int(current_app.config.get("VIGIL_EXPORT_MAX_RUNNING",
                                                                 MAX_RUNNING)),
                           "days": MAX_RANGE_US // 86_400_000_000})


@exports.get("/exports/<export_id>")
@require_role("operator")
def show(export_id: str):
    entry = service().get(export_id)
    if entry is None:
        return _not_found()
    return jsonify(export_json(entry))


@exports.delete("/exports/<export_id>")
@require_role("operator")
def remove(export_id: str):
    """A running export is cancelled (nothing of it is kept); a finished one is deleted
    with its files; a failed or cancelled one is removed from the list."""
    exports_ = service()
    entry = exports_.get(export_id)
    if entry is None:
        return _not_found()
    if entry.running:
        stopped = exports_.cancel(entry)
        _audit("export_cancelled", export_id)
        body = export_json(entry)
        if not stopped:
            body["note"] = "cancel requested; the export stops within a few seconds"
            return jsonify(body), 202
        return jsonify(body)
    body = export_json(entry)
    exports_.delete(entry)
    _audit("export_deleted", f"{export_id} ({entry.current_state})")
    answer = {"id": export_id, "deleted": True}
    if body["protection_ids"]:
        answer["note"] = ("the footage of this range stays protected from retention; an "
                          "admin releases it with `nvr protect --remove ID` (IDs "
                          f"{', '.join(str(p) for p in body['protection_ids'])})")
        answer["protection_ids"] = body["protection_ids"]
    return jsonify(answer)


@exports.get("/exports/<export_id>/files/<name>")
@require_role("operator")
def download(export_id: str, name: str):
    """One MP4, manifest.json or manifest.sig of a finished export, as an attachment."""
    exports_ = service()
    entry = exports_.get(export_id)
    if entry is None:
        return _not_found()
    if entry.running:
        return jsonify(error="the export is still running; its files are not ready"), 409
    path = exports_.file(entry, name)
    if path is None:
        return _not_found("this export has no file of that name")
    if "Range" not in request.headers:
        _audit("export_downloaded", f"{export_id}/{name}")
    mimetype = ("video/mp4" if name.endswith(".mp4") else
                "application/json" if name == MANIFEST_NAME else "text/plain")
    resp: Response = send_file(path, mimetype=mimetype, as_attachment=True, download_name=name,
                               conditional=True, max_age=0)
    resp.headers["Cache-Control"] = "private, no-cache"
    return resp
