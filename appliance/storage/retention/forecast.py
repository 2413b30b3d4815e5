"""How many days of footage each camera will keep at its current bitrate.

Each camera's horizon is the tightest of: its age limit; its size limit divided by its
daily volume; and the disk's share: everything the disk can hold for recordings (the
archive now plus free space above the low-water mark) divided by all cameras' daily
volume together (cameras fill the disk in proportion to their bitrates). The bitrate is
measured from the last hour of recorded segments.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from appliance.recorder.index import RecordingIndex
from appliance.storage.retention.policy import (US_PER_DAY, DiskSpace, RetentionPolicy)

RATE_WINDOW_US = 3600 * 1_000_000
MIN_SAMPLE_US = 30 * 1_000_000


@dataclass
class Forecast:
    camera: str
    bytes_held: int
    retained_days: float          # what is on disk now, oldest to newest
    bytes_per_day: float | None   # None: not enough recent footage to measure
    forecast_days: float | None   # None: no limit applies or no rate yet
    limited_by: str               # "max_age", "max_bytes", "disk" or ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("retained_days", "bytes_per_day", "forecast_days"):
            if data[key] is not None:
                data[key] = round(data[key], 3)
        return data


def forecast(index: RecordingIndex, policy: RetentionPolicy, space: DiskSpace,
             now_us: int) -> dict[str, Forecast]:
    usage = index.usage_by_camera()
    rates = {cam: _rate_per_day(index, cam, u["last_us"] or now_us) for cam, u in usage.items()}
    archive = sum(u["bytes"] or 0 for u in usage.values())
    low_water = space.total_bytes * policy.settings.min_free_percent / 100
    capacity = archive + max(0.0, space.free_bytes - low_water)
    total_rate = sum(r for r in rates.values() if r)
    result = {}
    for cam, use in usage.items():
        rate = rates[cam]
        limits: list[tuple[float, str]] = []
        max_age = policy.max_age_us(cam)
        if max_age:
            limits.append((max_age / US_PER_DAY, "max_age"))
        max_bytes = policy.max_bytes(cam)
        if max_bytes and rate:
            limits.append((max_bytes / rate, "max_bytes"))
        if total_rate:
            limits.append((capacity / total_rate, "disk"))
        days, rule = min(limits) if limits else (None, "")
        span = ((use["last_us"] or 0) - (use["first_us"] or 0)) / US_PER_DAY
        result[cam] = Forecast(cam, use["bytes"] or 0, max(0.0, span), rate, days, rule)
    return result


def _rate_per_day(index: RecordingIndex, camera: str, last_us: int) -> float | None:
    held, recorded_us = index.recent_usage(camera, last_us - RATE_WINDOW_US)
    if recorded_us < MIN_SAMPLE_US:
        return None
    return held / recorded_us * US_PER_DAY
