"""The recorder process: reconcile, then one ingest thread per camera, retention, status
and watchdog.

Data volume (appliance/storage/volume.py): unless `storage.allow_boot_media`, recording
starts only on an initialised data disk; until one is mounted the recorder waits (ready,
status "waiting for the data disk"). If the disk disappears while recording, the
recorder stops its cameras and exits with EXIT_VOLUME_LOST, so that systemd starts it
afresh (new index connection, reconcile) and it waits for the disk to come back.

Watchdog rule (DESIGN.md, security.md §4.4): `WATCHDOG=1` is sent only while every
enabled camera's thread shows progress, i.e. it received a packet, finished a connection
attempt or is inside a bounded wait within `settings.progress_deadline`. A thread stuck in
a read or a disk write stops the pings and systemd restarts the whole recorder.

Recording modes (recording.json, recording_settings.py; docs/design/recording-modes.md):
a camera whose mode is "off" now (by its schedule) has no thread; its worker is stopped
cleanly with an `outside_schedule` gap and started again at the schedule's next change
(the tick compares the wall clock with that instant: no polling of the schedule). In
"events" mode the camera records as usual but its segments are indexed as 'rolling';
the retention thread promotes event footage and trims the rest (classes.py).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from appliance.config.recorder import CameraConfig, RecorderSettings
from appliance.config.storage import StorageSettings
from appliance.core.clock import Clock, RealClock
from appliance.core.errors import DataLoss
from appliance.core.files import atomic_write
from appliance.core.sdnotify import SystemdNotifier
from appliance.recorder.camera import CameraRecorder, Emit
from appliance.recorder.index import GapCause, RecordingIndex
from appliance.recorder.reconcile import ReconcileReport, reconcile
from appliance.recorder.recording_settings import RecordingSettings, RecordingSettingsFile
from appliance.storage.retention.classes import classify_camera
from appliance.storage.gate import WriteGate
from appliance.storage.retention.policy import RetentionPolicy
from appliance.storage.retention.overrides import OverridesFile
from appliance.storage.retention.worker import RetentionWorker
from appliance.storage.volume import check_data_dir

log = logging.getLogger(__name__)

STATUS_EVERY = 2.0
LICENCE_EVERY = 5.0
EXIT_VOLUME_LOST = 75  # EX_TEMPFAIL: systemd restarts us; we wait for the disk
VOLUME_LOST_NOTE = "volume-lost.json"   # in runtime_dir: why the next start finds a gap


@dataclass
class CameraView:
    """One camera's status as shown on the console and stored in camera_status."""

    name: str
    state: str
    detail: str
    bitrate_bps: float
    segments: int
    stats: dict[str, Any]


OFFLINE_ALERT_S = 60.0   # a camera not recording this long is an alert for the owner
NOT_DOWN_STATES = frozenset({"outside_schedule", "not_licensed"})  # off on purpose


class Recorder:
    def __init__(self, data_dir: Path, cameras: list[CameraConfig], settings: RecorderSettings,
                 clock: Clock | None = None, notifier: SystemdNotifier | None = None,
                 emit: Emit | None = None, storage: StorageSettings | None = None,
                 channel_limit: Callable[[], int] | None = None,
                 camera_source: Callable[[], list[CameraConfig]] | None = None,
                 retention_overrides: Path | None = None,
                 recording_settings: Path | None = None,
                 events_factory: Callable[[RecordingIndex], Any] | None = None,
                 runtime_dir: Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.runtime_dir = runtime_dir     # survives our restarts, not on the data disk
        self._lost_note: dict[str, Any] | None = None
        self.cameras = [cam for cam in cameras if cam.enabled]
        self.settings = settings
        self.storage = storage or StorageSettings()
        self.gate = WriteGate()
        self.retention: RetentionWorker | None = None
        self.waiting_for_volume = ""   # why recording has not started yet
        self.exit_code: int | None = None  # set when the process must end (disk gone)
        self.channel_limit = channel_limit
        self.camera_source = camera_source  # re-read every LICENCE_EVERY (registry changes)
        self.retention_overrides = retention_overrides  # the owner's changes (web UI)
        self.unlicensed: list[str] = []    # enabled cameras beyond the licence, in order
        self._last_licence_check = float("-inf")
        self.clock = clock or RealClock()
        self.notifier = notifier or SystemdNotifier()
        self.emit = emit
        self.stop_event = threading.Event()
        self.index: RecordingIndex | None = None
        self.workers: dict[str, CameraRecorder] = {}
        self.reconcile_report: ReconcileReport | None = None
        self._bitrate: dict[str, float] = {}
        self._last_bytes: dict[str, tuple[float, int]] = {}
        self._last_status = 0.0
        self._last_ping = 0.0
        self._status_failing = False
        self.recording = RecordingSettings()  # the owner's modes (recording.json)
        self._recording_file = (RecordingSettingsFile(recording_settings)
                                if recording_settings else None)
        self._recording_refused = False
        self._modes: dict[str, tuple[str, float]] = {}  # camera -> (mode, valid until wall s)
        self.off: dict[str, float] = {}  # cameras held off by their schedule -> resume at
        self._trimmed: set[str] = set()  # cameras the classifier has seen since start
        # the cameras' own events (ONVIF subscriptions, appliance/events): built once the
        # index exists, refreshed with the camera list, closed before the index
        self.events_factory = events_factory
        self.events = None
        self._down_since: dict[str, float] = {}   # camera -> monotonic s it stopped recording
        self._down_alerted: set[str] = set()

    def start(self) -> None:
        self.notifier.ready()
        self._start_when_volume_ready()

    def _start_when_volume_ready(self) -> None:
        volume = check_data_dir(self.data_dir, self.storage.allow_boot_media)
        if not volume.ok:
            if volume.detail != self.waiting_for_volume:
                log.error("not recording: %s", volume.detail)
            self.waiting_for_volume = volume.detail
            return
        self.waiting_for_volume = ""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.index = RecordingIndex(self.data_dir)
        self.reconcile_report = reconcile(self.data_dir, self.index)
        clean = self.index.get_meta("clean_shutdown") != "0"
        self.index.set_meta("clean_shutdown", "0")
        self._clean_start = clean
        self._lost_note = self._take_volume_lost_note()
        self._reload_recording()
        self.apply_licence()
        policy = RetentionPolicy(self.storage, {cam.name: cam.retention for cam in self.cameras},
                                 self._event_ages())
        self.retention = RetentionWorker(self.data_dir, self.index, policy, self.clock,
                                         self.stop_event, self.gate, self.segments_in_progress,
                                         self._volume_lost, overrides=(
                                             OverridesFile(self.retention_overrides)
                                             if self.retention_overrides else None),
                                         classify=self._classify)
        self.retention.start()
        if self.events_factory is not None:
            try:
                self.events = self.events_factory(self.index)
            except Exception as exc:  # events are extra: recording goes on without them
                log.error("camera events unavailable: %s", exc)
        log.info("recorder started: %d camera(s), data in %s", len(self.workers), self.data_dir)

    # --- the camera list: cameras added, removed or changed while running ---------------------
    def refresh_cameras(self) -> None:
        """Take the current camera list (the registry changes when cameras are added,
        adopted, removed, moved or get a new password): a camera that is gone, disabled
        or whose URL changed is stopped cleanly (gap `reconfigured`); new and changed
        ones are started by apply_licence."""
        if self.camera_source is None:
            return
        try:
            current = [cam for cam in self.camera_source() if cam.enabled]
        except Exception as exc:  # a damaged list must not stop what is recording
            log.error("camera list unreadable (%s); recording the cameras as they were", exc)
            return
        by_name = {cam.name: cam for cam in current}
        for name, worker in list(self.workers.items()):
            new = by_name.get(name)
            if new is not None and new.url == worker.camera.url:
                continue
            why = "removed or disabled" if new is None else "its address or credentials changed"
            log.info("camera=%s %s; stopping its recording", name, why)
            worker.stop_with(GapCause.RECONFIGURED, f"the camera was {why}" if new is None
                             else f"{why}; recording restarts", "stopped")
            worker.join(self.settings.read_timeout + 5)
            del self.workers[name]
        self.cameras = current

    # --- licence: which cameras record ------------------------------------------------------
    def apply_licence(self) -> None:
        """Record the first N enabled cameras (N = licensed channels), in the order they
        are configured; stop the others at once (their segment closed cleanly) and say
        which. Called at start and every LICENCE_EVERY seconds, so installing a licence
        takes effect without a restart."""
        self._last_licence_check = self.clock.monotonic()
        limit = len(self.cameras)
        if self.channel_limit is not None:
            try:
                limit = self.channel_limit()
            except Exception as exc:  # an unreadable licence must not stop recording
                log.error("licence check failed (%s); keeping the cameras as they are", exc)
                return
        allowed = [cam for cam in self.cameras[:limit]]
        refused = [cam.name for cam in self.cameras[limit:]]
        for name in reversed([n for n in self.workers if n in refused]):
            worker = self.workers.pop(name)
            worker.stop_with(GapCause.NOT_LICENSED, f"beyond the {limit} licensed channels",
                             "not_licensed")
            worker.join(self.settings.read_timeout + 5)
        for cam in allowed:
            if cam.name not in self.workers:
                self._start_worker(cam)
        if refused != self.unlicensed:
            self.unlicensed = refused
            if refused:
                self.index.add_alert(int(self.clock.wall() * 1e6), "critical", "licence",
                                     f"the licence allows {limit} cameras: not recording "
                                     f"{', '.join(refused)}")
                log.error("licence allows %d cameras; not recording: %s", limit,
                          ", ".join(refused))

    def _start_worker(self, cam: CameraConfig, clean: bool | None = None) -> None:
        mode = self._mode(cam.name, self.clock.wall())
        if mode == "off":
            self._hold_off(cam.name, self._clean_start if clean is None else clean)
            return
        worker = CameraRecorder(cam, self.settings, self.data_dir, self.index, self.clock,
                                threading.Event(), self.emit,
                                self._initial_gap(cam.name, self._clean_start if clean is None
                                                  else clean), self.gate)
        worker.segment_class = "rolling" if mode == "events" else "continuous"
        self.workers[cam.name] = worker
        worker.start()

    # --- recording modes (schedule) ---------------------------------------------------------
    def _reload_recording(self) -> None:
        """Take the owner's recording modes when recording.json changed. A damaged file
        keeps the modes in force and raises one alert."""
        if self._recording_file is None:
            return
        try:
            changed = self._recording_file.changed()
        except DataLoss as exc:
            if not self._recording_refused and self.index is not None:
                self.index.add_alert(int(self.clock.wall() * 1e6), "warning", "recording",
                                     f"recording modes not applied: {exc}")
            self._recording_refused = True
            return
        if changed is None:
            return
        self._recording_refused = False
        self.recording = changed
        self._modes.clear()
        if self.retention is not None:
            self.retention.set_event_ages(self._event_ages())
        log.info("recording modes: %s", changed.to_json()["cameras"])

    def _event_ages(self) -> dict[str, float]:
        return {name: cam.event_max_age_days for name, cam in self.recording.cameras.items()
                if cam.event_max_age_days}

    def _mode(self, camera: str, now: float) -> str:
        """The camera's mode now, from a cache valid until the schedule's next change."""
        cached = self._modes.get(camera)
        if cached is not None and now < cached[1]:
            return cached[0]
        rec = self.recording.camera(camera)
        instant = datetime.fromtimestamp(now, timezone.utc)
        mode = rec.mode_at(instant)
        change = rec.next_change(instant)
        self._modes[camera] = (mode, change.timestamp() if change else now + 86_400)
        return mode

    def _hold_off(self, camera: str, clean: bool) -> None:
        """The camera is outside its schedule with no thread: say so in its gap."""
        now = self.clock.wall()
        self._mode(camera, now)
        self.off[camera] = self._modes[camera][1]
        current = self._initial_gap(camera, clean)
        if current is None or current[1] != GapCause.OUTSIDE_SCHEDULE:
            self.index.open_gap(camera, int(now * 1e6), GapCause.OUTSIDE_SCHEDULE,
                                "not recorded: outside schedule",
                                replacing=current[0] if current else None)
        log.info("camera=%s outside its recording schedule", camera)

    def apply_modes(self) -> None:
        """Stop the cameras whose schedule says "off" now, start those whose schedule
        resumed, and tell running ones which retention class their segments get."""
        self._reload_recording()
        now = self.clock.wall()
        current = {cam.name for cam in self.cameras} - set(self.unlicensed)
        for name in [n for n in self.off if n not in current]:
            del self.off[name]
        for cam in self.cameras:
            if cam.name not in current:
                continue
            mode = self._mode(cam.name, now)
            worker = self.workers.get(cam.name)
            if mode == "off" and worker is not None:
                log.info("camera=%s recording schedule says off; stopping", cam.name)
                worker.stop_with(GapCause.OUTSIDE_SCHEDULE, "not recorded: outside schedule",
                                 "outside_schedule")
                worker.join(self.settings.read_timeout + 5)
                del self.workers[cam.name]
                self.off[cam.name] = self._modes[cam.name][1]
            elif mode != "off" and worker is None and cam.name in self.off:
                del self.off[cam.name]
                log.info("camera=%s recording schedule resumes (%s)", cam.name, mode)
                self._start_worker(cam, clean=True)
            elif worker is not None:
                worker.segment_class = "rolling" if mode == "events" else "continuous"

    def _classify(self, now_us: int) -> None:
        """Called by the retention thread: promote event footage, trim rolling buffers
        (not for cameras that record continuously all the time: as before modes). Rolling
        segments are looked for where the schedule has "events", and once per camera
        after start (left over from a mode since changed)."""
        for cam in list(self.cameras):
            rec = self.recording.camera(cam.name)
            first = cam.name not in self._trimmed
            if rec.mode != "continuous" or first:
                self._trimmed.add(cam.name)
                classify_camera(self.data_dir, self.index, cam.name, rec.pre_event_s,
                                rec.post_event_s, self.settings.segment_seconds, now_us,
                                trim=first or "events" in rec.schedule.modes())

    def segments_in_progress(self) -> set[str]:
        return {w.stats.current_segment for w in self.workers.values() if w.stats.current_segment}

    def _volume_lost(self, detail: str) -> None:
        """Called by the retention thread: the data disk is gone. Stop writing, then exit."""
        log.critical("data disk lost: %s; recording stops and the recorder restarts to wait "
                     "for it", detail)
        self.gate.close("disk_missing", detail)
        self._note_volume_lost(detail)
        self.exit_code = EXIT_VOLUME_LOST
        self._stop_all()

    def _note_volume_lost(self, detail: str) -> None:
        """The index went with the disk, so the gap's cause is noted beside us instead."""
        if self.runtime_dir is None:
            return
        note = {"at_us": int(self.clock.wall() * 1e6), "detail": detail}
        try:
            atomic_write(self.runtime_dir / VOLUME_LOST_NOTE,
                         json.dumps(note).encode(), durable=False)
        except OSError as exc:
            log.error("could not note the lost data disk in %s: %s", self.runtime_dir, exc)

    def _take_volume_lost_note(self) -> dict[str, Any] | None:
        if self.runtime_dir is None:
            return None
        path = self.runtime_dir / VOLUME_LOST_NOTE
        try:
            text = path.read_bytes()[:4096]
            path.unlink()                       # used once, whatever it holds
            note = json.loads(text)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring the lost-disk note %s: %s", path, exc)
            return None
        return note if isinstance(note, dict) else None

    def _stop_all(self) -> None:
        self.stop_event.set()
        for worker in list(self.workers.values()):
            worker.stop.set()

    def _initial_gap(self, camera: str, clean: bool) -> tuple[int, str] | None:
        """The gap this camera is in at start: the one left open, or a crash gap."""
        index = self.index
        open_gaps = index.open_gaps(camera)
        lost = (f"the data disk was lost while recording: "
                f"{str(self._lost_note.get('detail', ''))[:300]}" if self._lost_note else "")
        if clean:
            for gap in open_gaps[:-1]:
                index.close_gap(gap.id, open_gaps[-1].start_us)
            if not open_gaps:
                return None
            last = open_gaps[-1]
            if lost and last.cause == GapCause.RECORDER_STOPPED:
                # it stopped because the disk went (and could still write that it stopped)
                index.set_gap_cause(last.id, GapCause.DISK_MISSING, lost)
                return last.id, GapCause.DISK_MISSING
            return last.id, last.cause
        last_end = index.last_segment_end(camera) or 0
        heartbeat = index.statuses().get(camera, {}).get("heartbeat_us", 0)
        crash_at = max(last_end, heartbeat)
        if not crash_at:
            return None  # a camera that never recorded has nothing to account for
        for gap in open_gaps:
            index.close_gap(gap.id, crash_at)
        if lost:
            gap_id = index.open_gap(camera, crash_at, GapCause.DISK_MISSING, lost)
            return gap_id, GapCause.DISK_MISSING
        gap_id = index.open_gap(camera, crash_at, GapCause.CRASH,
                                "the recorder did not shut down cleanly (power loss or crash)")
        return gap_id, GapCause.CRASH

    # --- periodic work ------------------------------------------------------------------
    def tick(self) -> list[CameraView]:
        """Called about once a second by the owner of the process: status and watchdog."""
        now = self.clock.monotonic()
        if self.index is None and self.exit_code is None:
            self._start_when_volume_ready()
            if self.index is None:
                self._ping_watchdog(now, waiting=True)
                return []
        if now - self._last_licence_check >= LICENCE_EVERY and not self.stop_event.is_set():
            self.refresh_cameras()
            self.apply_licence()
            self._refresh_events()
        if not self.stop_event.is_set():
            self.apply_modes()
        views = self.views(now)
        self._camera_offline_alerts(views, now)
        if now - self._last_status >= STATUS_EVERY:
            self._last_status = now
            self._store_status(views)
        self._ping_watchdog(now)
        return views

    def _camera_offline_alerts(self, views: list[CameraView], now: float) -> None:
        """A camera that has not recorded for OFFLINE_ALERT_S (and is not meant to be off:
        schedule, licence) raises one warning alert with the reason; recording again
        clears it with an info alert from the same source (the alert list pairs them)."""
        for view in views:
            name = view.name
            if view.state == "recording" or view.state in NOT_DOWN_STATES:
                since = self._down_since.pop(name, None)
                if name in self._down_alerted and view.state == "recording":
                    self._down_alerted.discard(name)
                    self._alert("info", f"camera:{name}", f"camera {name} is recording again "
                                f"after {now - (since or now):.0f} s")
                continue
            since = self._down_since.setdefault(name, now)
            if now - since >= OFFLINE_ALERT_S and name not in self._down_alerted:
                self._down_alerted.add(name)
                self._alert("warning", f"camera:{name}", f"camera {name} has not recorded for "
                            f"{now - since:.0f} s: {view.state}" +
                            (f" ({view.detail})" if view.detail else ""))

    def _alert(self, severity: str, source: str, message: str) -> None:
        try:
            self.index.add_alert(int(self.clock.wall() * 1e6), severity, source, message)
        except sqlite3.Error as exc:
            log.error("alert not stored (%s): %s", exc, message)

    def _refresh_events(self) -> None:
        if self.events is None:
            return
        try:
            self.events.refresh()
        except Exception as exc:  # a damaged camera list: the subscribers stay as they are
            log.error("camera events: %s", exc)

    def _ping_watchdog(self, now: float, waiting: bool = False) -> None:
        interval = self.notifier.watchdog_interval
        if not interval or now - self._last_ping < interval / 2:
            return
        stalled = [] if waiting else self.stalled_cameras(now)
        if stalled:
            log.error("watchdog not fed: no progress from camera(s) %s", ", ".join(stalled))
        else:
            self.notifier.watchdog()
            self._last_ping = now

    def _store_status(self, views: list[CameraView]) -> None:
        """Persist each camera's status; a full or failing disk must not stop recording."""
        wall_us = int(self.clock.wall() * 1_000_000)
        try:
            for view in views:
                self.index.write_status(view.name, view.state, view.detail, wall_us,
                                        {**view.stats, "bitrate_bps": round(view.bitrate_bps)})
        except sqlite3.Error as exc:
            if not self._status_failing:
                log.error("camera status cannot be stored (%s); recording goes on", exc)
            self._status_failing = True
        else:
            self._status_failing = False

    def stalled_cameras(self, now: float | None = None) -> list[str]:
        now = self.clock.monotonic() if now is None else now
        limit = self.settings.progress_deadline
        return [name for name, w in self.workers.items() if now - w.stats.last_progress > limit]

    def views(self, now: float | None = None) -> list[CameraView]:
        now = self.clock.monotonic() if now is None else now
        views = []
        for name, worker in self.workers.items():
            stats = worker.stats
            then, then_bytes = self._last_bytes.get(name, (now, stats.bytes_in))
            if now - then >= 1.0:
                rate = (stats.bytes_in - then_bytes) * 8 / (now - then)
                old = self._bitrate.get(name)
                self._bitrate[name] = rate if old is None else 0.5 * old + 0.5 * rate
                self._last_bytes[name] = (now, stats.bytes_in)
            elif name not in self._last_bytes:
                self._last_bytes[name] = (now, stats.bytes_in)
            views.append(CameraView(name, stats.state, stats.detail, self._bitrate.get(name, 0.0),
                                    stats.segments, stats.public()))
        for name in self.unlicensed:
            views.append(CameraView(name, "not_licensed", "beyond the licensed channel count",
                                    0.0, 0, {}))
        for name, until in self.off.items():
            resume = datetime.fromtimestamp(until, timezone.utc).isoformat(timespec="seconds")
            views.append(CameraView(name, "outside_schedule",
                                    f"not recorded: outside schedule; resumes {resume}",
                                    0.0, 0, {}))
        return views

    # --- shutdown -------------------------------------------------------------------------
    def stop(self, timeout: float | None = None) -> bool:
        """Stop every camera (closing its segment) and mark the shutdown clean."""
        self.notifier.stopping()
        self._stop_all()
        if self.events is not None:  # unsubscribes (bounded), before the index closes
            self.events.close()
            self.events = None
        deadline = self.clock.monotonic() + (timeout if timeout is not None else
                                             self.settings.read_timeout + 5)
        all_done = True
        for worker in self.workers.values():
            all_done &= worker.join(max(0.1, deadline - self.clock.monotonic()))
        if self.retention is not None:
            all_done &= self.retention.join(max(0.1, deadline - self.clock.monotonic()))
        if self.index is not None:
            self.tick_status_now()
            if all_done:
                try:
                    self.index.set_meta("clean_shutdown", "1")
                except sqlite3.Error as exc:  # the next start will treat it as a crash
                    log.error("could not record the clean shutdown: %s", exc)
            else:
                log.error("some camera threads did not stop in time; the next start reconciles")
            self.index.close()
            self.index = None
        return all_done

    def tick_status_now(self) -> None:
        self._last_status = float("-inf")
        self.tick()
