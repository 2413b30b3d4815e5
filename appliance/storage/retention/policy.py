"""Plan one retention pass: which segments to delete, by which rule, and whether to go on.

Rules, the first limit reached applies (per segment the first rule that selects it is the
one audited):
* `max_age`: a camera's segments that ended more than its max age ago;
* `event_max_age`: when the camera has its own event_max_age_days (recording.json), its
  'event' segments follow that age instead of max_age (kept longer, or shorter);
* `max_bytes`: a camera's oldest segments until it holds at most its size limit;
* `low_water`: when the disk's real free space (statvfs, not the index's sum) is below
  the low-water mark, the oldest segments of all cameras until free space is back above
  the mark plus the headroom (only with full_disk_action = "overwrite"). Non-event
  footage goes first: event segments are taken only when no other eligible one is left.

Never selected: footage that overlaps a protected range, and each camera's newest
`keep_newest_minutes` of recorded time (measured from the camera's last recorded
instant, not from the wall clock, so a clock jump cannot make new footage look old).
The segment being written has no index row yet, so it is never a candidate either.

Guard: a plan that would delete more than `max_delete_percent` of the archive at once is
not carried out (the caller raises an alert), unless the owner approved one large pass.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from appliance.config.storage import CameraRetention, StorageSettings
from appliance.recorder.index import Protection, RecordingIndex, Segment

US_PER_DAY = 86_400 * 1_000_000
US_PER_MINUTE = 60 * 1_000_000


class Rule:
    MAX_AGE = "max_age"
    EVENT_MAX_AGE = "event_max_age"
    MAX_BYTES = "max_bytes"
    LOW_WATER = "low_water"
    ORPHAN_UNREADABLE = "orphan_unreadable"


@dataclass(frozen=True)
class DiskSpace:
    total_bytes: int
    free_bytes: int  # available to the recorder (f_bavail), the figure that runs out

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 0.0


def disk_space(path: Path) -> DiskSpace:
    st = os.statvfs(path)
    return DiskSpace(st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize)


@dataclass(frozen=True)
class Planned:
    segment: Segment
    rule: str
    detail: str


@dataclass
class RetentionPlan:
    items: list[Planned] = field(default_factory=list)
    archive_bytes: int = 0
    space: DiskSpace | None = None
    below_low_water: bool = False
    short_of_space: int = 0          # bytes still missing after every eligible segment
    stop_recording: bool = False     # full_disk_action = "stop" and below the mark

    @property
    def bytes(self) -> int:
        return sum(p.segment.bytes for p in self.items if p.segment.status != "missing")

    @property
    def share(self) -> float:
        return self.bytes / self.archive_bytes if self.archive_bytes else 0.0

    def exceeds(self, max_delete_percent: float) -> bool:
        return self.bytes > 0 and self.share * 100.0 > max_delete_percent


class RetentionPolicy:
    def __init__(self, settings: StorageSettings, cameras: dict[str, CameraRetention],
                 event_ages: dict[str, float] | None = None) -> None:
        self.settings = settings
        self.cameras = cameras
        self.event_ages = event_ages or {}  # camera -> event_max_age_days (recording.json)

    def event_max_age_us(self, camera: str) -> int | None:
        """The age limit of the camera's event footage, or None: like its other footage."""
        days = self.event_ages.get(camera) or 0
        return int(days * US_PER_DAY) if days else None

    def max_age_us(self, camera: str) -> int | None:
        own = self.cameras.get(camera, CameraRetention()).max_age_days
        days = own or self.settings.max_age_days
        return int(days * US_PER_DAY) if days else None

    def max_bytes(self, camera: str) -> int | None:
        limit = self.cameras.get(camera, CameraRetention()).max_bytes
        return limit or None

    def plan(self, index: RecordingIndex, space: DiskSpace, now_us: int) -> RetentionPlan:
        usage = index.usage_by_camera()
        plan = RetentionPlan(archive_bytes=sum(u["bytes"] or 0 for u in usage.values()),
                             space=space)
        keep = _Keep(index.protections(), usage,
                     int(self.settings.keep_newest_minutes * US_PER_MINUTE))
        chosen: set[str] = set()

        def take(seg: Segment, rule: str, detail: str) -> None:
            chosen.add(seg.path)
            plan.items.append(Planned(seg, rule, detail))

        for camera in usage:
            max_age = self.max_age_us(camera)
            event_age = self.event_max_age_us(camera)
            if max_age is not None:
                days = max_age / US_PER_DAY
                for seg in index.segments_ending_before(camera, now_us - max_age):
                    if keep.allows(seg) and (event_age is None or
                                             seg.retention_class != "event"):
                        take(seg, Rule.MAX_AGE, f"older than {days:g} days")
            if event_age is not None:
                days = event_age / US_PER_DAY
                for seg in index.segments_ending_before(camera, now_us - event_age):
                    if seg.retention_class == "event" and seg.path not in chosen and \
                            keep.allows(seg):
                        take(seg, Rule.EVENT_MAX_AGE, f"event footage older than {days:g} days")
        for camera, use in usage.items():
            limit = self.max_bytes(camera)
            held = (use["bytes"] or 0) - sum(p.segment.bytes for p in plan.items
                                              if p.segment.camera == camera)
            if limit is None or held <= limit:
                continue
            for seg in _oldest(index, camera):
                if held <= limit:
                    break
                if seg.path not in chosen and keep.allows(seg):
                    take(seg, Rule.MAX_BYTES, f"camera above its {limit / 1024**3:g} GiB limit")
                    held -= seg.bytes
        self._low_water(index, space, plan, keep, chosen, take)
        plan.items.sort(key=lambda p: (p.segment.start_us, p.segment.id or 0))
        return plan

    def _low_water(self, index, space, plan, keep, chosen, take) -> None:
        low = space.total_bytes * self.settings.min_free_percent / 100
        if space.free_bytes >= low:
            return
        plan.below_low_water = True
        if self.settings.full_disk_action == "stop":
            plan.stop_recording = True
            return
        target = space.total_bytes * (self.settings.min_free_percent +
                                      self.settings.free_headroom_percent) / 100
        need = target - space.free_bytes - plan.bytes
        detail = f"free space {space.free_percent:.1f} % below the {self.settings.min_free_percent:g} % mark"
        for events in (False, True):  # other footage first, event footage last
            for seg in _oldest(index, None):
                if need <= 0:
                    break
                if (seg.retention_class == "event") != events or seg.path in chosen or \
                        seg.status == "missing" or not keep.allows(seg):
                    continue
                take(seg, Rule.LOW_WATER, detail)
                need -= seg.bytes
        plan.short_of_space = max(0, int(need))


class _Keep:
    """What no rule may delete: protected ranges and each camera's newest minutes."""

    def __init__(self, protections: list[Protection], usage: dict[str, dict[str, int]],
                 keep_newest_us: int) -> None:
        self.protections = protections
        self.newest_from = {cam: (u["last_us"] or 0) - keep_newest_us for cam, u in usage.items()}

    def allows(self, seg: Segment) -> bool:
        if seg.end_us > self.newest_from.get(seg.camera, seg.end_us):
            return False
        return not any(p.covers(seg.camera, seg.start_us, seg.end_us) for p in self.protections)


def _oldest(index: RecordingIndex, camera: str | None) -> Iterator[Segment]:
    """Segments oldest first, read a page at a time (an archive can hold 10^6 rows)."""
    after = None
    while True:
        page = index.oldest_segments(camera, after)
        if not page:
            return
        yield from page
        after = (page[-1].start_us, page[-1].id)
