"""The retention thread of the recorder process.

It runs in the recorder because the recorder is the one writer of the segments table
(DESIGN.md: each table has one writer) and because "stop recording at the low-water
mark" must reach the camera threads (docs/adr/0003-retention-in-the-recorder.md).

Every `check_every` seconds: is the data volume still there (if not, the recorder is
told at once)? Has the owner changed retention (retention.json, see overrides.py)? The retention
classes (classes.py: event footage promoted, the events-only rolling buffer trimmed). Every `retention_interval`: plan a pass, apply the guard, delete, and set
or clear the write gate. Every `orphan_scan_minutes`: index or remove files that have no
row, so they cannot fill the disk unseen. Alerts are raised once per condition and
cleared (with an info alert) when the condition ends.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from appliance.config.storage import StorageSettings
from appliance.core.errors import DataLoss, InvalidConfig
from appliance.core.clock import Clock
from appliance.recorder.index import RecordingIndex
from appliance.recorder.reconcile import ReconcileReport, recover_orphan, segment_files
from appliance.storage.gate import WriteGate
from appliance.storage.retention.delete import delete_segment
from appliance.storage.retention.forecast import forecast
from appliance.storage.retention.overrides import (OverridesFile, effective_cameras,
                                                   effective_settings)
from appliance.storage.retention.policy import RetentionPlan, RetentionPolicy, disk_space
from appliance.storage.volume import check_data_dir

log = logging.getLogger(__name__)

APPROVAL_KEY = "retention_large_pass_approved"
ORPHAN_MIN_AGE = 600.0  # seconds: a file this fresh may be a segment about to be indexed


class _AlertBook:
    """Raise an alert once per condition; say so when the condition ends."""

    def __init__(self, index: RecordingIndex, clock: Clock) -> None:
        self.index, self.clock, self.active = index, clock, set()

    def raise_(self, key: str, severity: str, message: str) -> None:
        if key not in self.active:
            self.active.add(key)
            self._add(severity, message)

    def clear(self, key: str, message: str) -> None:
        if key in self.active:
            self.active.discard(key)
            self._add("info", message)

    def _add(self, severity: str, message: str) -> None:
        try:
            self.index.add_alert(int(self.clock.wall() * 1e6), severity, "retention", message)
        except sqlite3.Error as exc:
            log.error("alert not stored (%s): %s", exc, message)


class RetentionWorker:
    def __init__(self, data_dir: Path, index: RecordingIndex, policy: RetentionPolicy,
                 clock: Clock, stop: threading.Event, gate: WriteGate,
                 writing: Callable[[], set[str]], on_volume_lost: Callable[[str], None],
                 check_every: float = 2.0, overrides: OverridesFile | None = None,
                 classify: Callable[[int], None] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.index = index
        self.policy = policy
        self.settings: StorageSettings = policy.settings
        self.clock = clock
        self.stop = stop
        self.gate = gate
        self.writing = writing
        self.on_volume_lost = on_volume_lost
        self._check_every = check_every
        self.check_every = min(check_every, self.settings.retention_interval)
        self.base = policy  # the settings the recorder started with (TOML, flags)
        self.overrides = overrides
        self.alerts = _AlertBook(index, clock)
        self.classify = classify  # retention classes (classes.py), every check_every
        self.event_ages: dict[str, float] = dict(policy.event_ages)
        self.passes = 0
        self.last_plan: RetentionPlan | None = None
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        next_pass = next_orphans = self.clock.monotonic()
        while not self.stop.is_set():
            now = self.clock.monotonic()
            try:
                volume = check_data_dir(self.data_dir, self.settings.allow_boot_media)
                if not volume.ok:
                    self.on_volume_lost(volume.detail)
                    return
                if self.reload_overrides():
                    next_pass = min(next_pass, now)  # apply the owner's change now
                if self.classify is not None:
                    self.classify(int(self.clock.wall() * 1e6))
                if now >= next_orphans:
                    next_orphans = now + self.settings.orphan_scan_minutes * 60
                    self.collect_orphans()
                if now >= next_pass:
                    next_pass = now + self.settings.retention_interval
                    self.run_pass()
            except Exception:  # a failing pass must not end retention for good
                log.exception("retention pass failed; trying again next interval")
            self.clock.sleep(self.check_every, self.stop)

    def reload_overrides(self) -> bool:
        """Take the owner's retention changes when the file changed; True if the policy
        changed. A damaged or refused file keeps the policy in force and raises an alert."""
        if self.overrides is None:
            return False
        try:
            changes = self.overrides.changed()
            if changes is None:
                return False
            settings = effective_settings(self.base.settings, changes)
        except (DataLoss, InvalidConfig) as exc:
            self.alerts.raise_("overrides", "warning", f"retention settings not applied: {exc}")
            return False
        # The volume switch is the recorder's, never the file's.
        settings = replace(settings, allow_boot_media=self.base.settings.allow_boot_media)
        self.policy = RetentionPolicy(settings, effective_cameras(self.base.cameras, changes),
                                      self.event_ages)
        self.settings = settings
        self.check_every = min(self._check_every, settings.retention_interval)
        self.alerts.clear("overrides", "retention settings applied again")
        log.info("retention settings changed: %s", changes.to_json())
        return True

    def set_event_ages(self, event_ages: dict[str, float]) -> None:
        """The cameras' event_max_age_days (recording.json); applies from the next pass."""
        self.event_ages = dict(event_ages)
        self.policy = RetentionPolicy(self.policy.settings, self.policy.cameras, self.event_ages)

    # --- one pass -----------------------------------------------------------------------
    def run_pass(self) -> RetentionPlan:
        now_us = int(self.clock.wall() * 1e6)
        space = disk_space(self.data_dir)
        plan = self.policy.plan(self.index, space, now_us)
        self.last_plan = plan
        self.passes += 1
        if plan.exceeds(self.settings.max_delete_percent) and not self._approved():
            self.alerts.raise_("guard", "critical", (
                f"retention stopped: this pass would delete {len(plan.items)} segments, "
                f"{plan.share:.0%} of the archive, at once (limit "
                f"{self.settings.max_delete_percent:g} %). If the clock jumped, fix it; if the "
                f"limits were lowered on purpose, run `nvr retention approve --data "
                f"{self.data_dir}`."))
            return plan
        self.alerts.clear("guard", "retention runs again: the last pass was within its limit")
        for item in plan.items:
            if self.stop.is_set():
                break
            delete_segment(self.data_dir, self.index, item.segment, item.rule, item.detail, now_us)
        self._full_disk(plan)
        self._forecast_alerts(space, now_us)
        return plan

    def _approved(self) -> bool:
        if self.index.get_meta(APPROVAL_KEY) != "1":
            return False
        self.index.set_meta(APPROVAL_KEY, "0")  # one pass only
        log.warning("the owner approved one large retention pass")
        return True

    def _full_disk(self, plan: RetentionPlan) -> None:
        space = plan.space
        if plan.stop_recording:
            if self.gate.is_open:
                self.gate.close("disk_full", f"the data disk is full ({space.free_percent:.1f} % "
                                "free) and full_disk_action is \"stop\"")
            self.alerts.raise_("stopped", "critical", "recording stopped: the data disk reached "
                               f"its low-water mark ({self.settings.min_free_percent:g} % free) "
                               "and full_disk_action is \"stop\"; free space or delete footage")
        elif not self.gate.is_open and space.free_percent >= (
                self.settings.min_free_percent + self.settings.free_headroom_percent):
            self.gate.open()
            self.alerts.clear("stopped", "recording resumed: free space is above the mark again")
        if plan.short_of_space:
            self.alerts.raise_("short", "critical", (
                "the data disk is below its low-water mark and everything left is protected "
                f"or among the newest {self.settings.keep_newest_minutes:g} minutes; "
                f"{plan.short_of_space / 1e6:.0f} MB more are needed. Remove protections or "
                "add a larger disk."))
        elif not plan.below_low_water:
            self.alerts.clear("short", "the data disk is back above its low-water mark")

    def _forecast_alerts(self, space, now_us: int) -> None:
        floor = self.settings.alert_below_days
        if not floor:
            return
        for cam, fc in forecast(self.index, self.policy, space, now_us).items():
            key = f"forecast:{cam}"
            if fc.forecast_days is not None and fc.forecast_days < floor:
                self.alerts.raise_(key, "warning", (
                    f"camera {cam} will keep only {fc.forecast_days:.1f} days of footage "
                    f"(limited by {fc.limited_by}), less than the {floor:g} days wanted"))
            else:
                self.alerts.clear(key, f"camera {cam} keeps at least {floor:g} days again")

    # --- orphans --------------------------------------------------------------------------
    def collect_orphans(self) -> ReconcileReport:
        """Files with no index row: indexed if readable, removed (audited) if not."""
        report = ReconcileReport()
        busy = self.writing()
        fresh_after = time.time() - ORPHAN_MIN_AGE
        indexed: dict[str, set[str]] = {}
        for relpath, path in segment_files(self.data_dir).items():
            camera = relpath.split("/")[1]
            if camera not in indexed:  # one camera's paths at a time, not the whole archive
                indexed = {camera: {seg.path for seg in self.index.segments(camera)}}
            if relpath in indexed[camera] or relpath in busy:
                continue
            try:
                if path.stat().st_mtime > fresh_after:
                    continue
            except FileNotFoundError:
                continue
            recover_orphan(self.data_dir, self.index, relpath, path, report)
        if report.recovered or report.removed_unreadable:
            log.warning("orphans: indexed %d, removed %d unreadable",
                        len(report.recovered), len(report.removed_unreadable))
        return report
