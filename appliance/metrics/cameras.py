"""Per-camera metrics from the recorder's index: its status rows (state, bitrate,
reconnects, written every 2 s), the footage it holds, its newest segment and its gaps.

Cost: the seconds of footage need a pass over every segment row (a month of 16 cameras
is 700,000 rows: 100 ms on the covering index on a desktop, several times that on a
Pi), so that sum is kept for FOOTAGE_EVERY_S, about one segment's length; everything
else is read at every scrape (index lookups and a few rows).
"""

from __future__ import annotations

from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from appliance.metrics.sources import (Cached, MetricSources, index_identity, number,
                                       open_index)
from appliance.recorder.index import RecordingIndex

# What the recorder says a camera is doing (recorder/camera.py, recorder/source.py,
# recorder/service.py). Each is exported (0 or 1) so that "not recording" is a series
# an alert can compare; a state not listed here is exported as it comes.
CAMERA_STATES = ("starting", "connecting", "waiting_keyframe", "recording", "retrying",
                 "unreachable", "auth_failed", "unsupported", "disk_error",
                 "stopped_disk_full", "stopped", "not_licensed", "outside_schedule")
# The recorder writes every camera's status every 2 s; older rows mean it is not running.
STALE_AFTER_S = 30.0
FOOTAGE_EVERY_S = 60.0

FOOTAGE_SQL = ("SELECT camera, COALESCE(SUM(end_us - start_us), 0) AS recorded_us "
               "FROM segments WHERE status != 'missing' GROUP BY camera")
NEWEST_SQL = ("SELECT end_us FROM segments WHERE camera = ? AND status != 'missing' "
              "ORDER BY start_us DESC LIMIT 1")
# An ongoing gap (no end yet) counts up to now; a gap "starting" after now counts 0.
GAPS_SQL = ("SELECT camera, cause, SUM(MAX(COALESCE(end_us, ?), start_us) - start_us) AS gap_us "
            "FROM gaps GROUP BY camera, cause")


class CameraReader:
    def __init__(self) -> None:
        self._footage: Cached[dict[str, int]] = Cached(FOOTAGE_EVERY_S)

    def __call__(self, sources: MetricSources) -> list[Metric]:
        now_us = sources.now_us()
        index = open_index(sources.data_dir)
        try:
            statuses = index.statuses()
            footage = self._footage.get(index_identity(index.path.parent), sources.clock,
                                        lambda: recorded_us(index))
            newest = newest_ends(index, sorted(set(statuses) | set(footage)))
            gaps = index.query(GAPS_SQL, (now_us,))
        finally:
            index.close()
        return status_families(statuses, now_us) + \
            footage_families(footage, newest, gaps, now_us)


def recorded_us(index: RecordingIndex) -> dict[str, int]:
    return {row["camera"]: row["recorded_us"] for row in index.query(FOOTAGE_SQL)}


def newest_ends(index: RecordingIndex, cameras: list[str]) -> dict[str, int]:
    """The end of each camera's newest segment that has its file (an index lookup each)."""
    ends = {}
    for camera in cameras:
        rows = index.query(NEWEST_SQL, (camera,))
        if rows:
            ends[camera] = rows[0]["end_us"]
    return ends


def status_families(statuses: dict[str, dict[str, Any]], now_us: int) -> list[Metric]:
    """What the recorder last said about each camera (the camera_status rows)."""
    state = GaugeMetricFamily("vigil_camera_state", "The recorder's state of the camera: 1 "
                              "for the current state, 0 for the others", labels=["camera", "state"])
    recording = GaugeMetricFamily("vigil_camera_recording", "1 while the camera is recorded "
                                  "(state recording, status fresh), else 0", labels=["camera"])
    age = GaugeMetricFamily("vigil_camera_status_age_seconds", "Seconds since the recorder "
                            "last wrote the camera's status (it writes every 2 s)",
                            labels=["camera"], unit="seconds")
    bitrate = GaugeMetricFamily("vigil_camera_bitrate_bits_per_second", "Incoming stream "
                                "bitrate, smoothed over a few seconds", labels=["camera"])
    received = CounterMetricFamily("vigil_camera_received_bytes", "Stream bytes received "
                                   "since the recorder started", labels=["camera"], unit="bytes")
    reconnects = CounterMetricFamily("vigil_camera_reconnects", "Stream reconnections since "
                                     "the recorder started", labels=["camera"])
    for camera, status in sorted(statuses.items()):
        current = str(status.get("state", "unknown"))
        for name in CAMERA_STATES + (() if current in CAMERA_STATES else (current,)):
            state.add_metric([camera, name], 1.0 if name == current else 0.0)
        seconds = max(0.0, (now_us - (number(status.get("heartbeat_us")) or 0)) / 1e6)
        age.add_metric([camera], seconds)
        recording.add_metric([camera], 1.0 if current == "recording" and
                             seconds <= STALE_AFTER_S else 0.0)
        for family, key in ((bitrate, "bitrate_bps"), (received, "bytes_in"),
                            (reconnects, "reconnects")):
            value = number(status.get(key))
            if value is not None:
                family.add_metric([camera], value)
    return [state, recording, age, bitrate, received, reconnects]


def footage_families(footage: dict[str, int], newest: dict[str, int], gaps: list,
                     now_us: int) -> list[Metric]:
    """What the index holds: recorded seconds, the newest segment, gaps by cause."""
    seconds = GaugeMetricFamily("vigil_camera_recorded_seconds", "Seconds of footage in the "
                                "index (segments not missing; refreshed every minute)",
                                labels=["camera"], unit="seconds")
    age = GaugeMetricFamily("vigil_camera_last_segment_age_seconds", "Seconds since the "
                            "end of the camera's newest closed segment (segments close "
                            "about every 60 s while recording)", labels=["camera"],
                            unit="seconds")
    gap = GaugeMetricFamily("vigil_camera_gap_seconds", "Seconds without footage in the "
                            "index, by cause; an ongoing gap counts up to now",
                            labels=["camera", "cause"], unit="seconds")
    for camera, us in sorted(footage.items()):
        seconds.add_metric([camera], us / 1e6)
    for camera, end_us in sorted(newest.items()):
        age.add_metric([camera], max(0.0, (now_us - end_us) / 1e6))
    for row in gaps:
        gap.add_metric([row["camera"], row["cause"]], (row["gap_us"] or 0) / 1e6)
    return [seconds, age, gap]
