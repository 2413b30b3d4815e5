"""Storage metrics: the data volume's space, the retention forecast per camera and the
deletions retention made, computed the way `nvr health --json` computes them
(appliance/storage/health.py: the volume check, statvfs, the forecast).

Seconds, not days: Prometheus wants base units (a Grafana panel with unit "s" shows
days). Cost: the forecast passes over every segment row, so it is kept for
FORECAST_EVERY_S (it moves by minutes of footage, not seconds). The deletion audit log
only grows (23,000 rows a day for 16 cameras at 60 s segments once the disk is full), so
its totals are counted incrementally by row id: each scrape reads only the rows added
since the last one (`DeletionTotals`).
"""

from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from appliance.core.errors import DataLoss
from appliance.metrics.sources import Cached, MetricSources, index_identity, require
from appliance.recorder.index import RecordingIndex
from appliance.storage.retention.forecast import Forecast, forecast
from appliance.storage.retention.overrides import retention_in_force
from appliance.storage.retention.policy import DiskSpace, RetentionPolicy, disk_space
from appliance.storage.volume import check_data_dir

SECONDS_PER_DAY = 86_400
FORECAST_EVERY_S = 60.0
Totals = dict[str, tuple[int, int]]      # rule -> (segments deleted, bytes deleted)


class DeletionTotals:
    """Deletions by rule since the index began, without re-reading the whole audit log.

    Rows below `settled` (the lowest id still pending, or the newest id) are final (a
    deletion goes pending -> done once and its row is never removed) and folded into
    `base`; rows above it are counted afresh at each scrape (normally none: a deletion
    is pending only for the moment between its audit entry and its unlink).
    """

    ROWS_SQL = ("SELECT rule, COUNT(*) AS count, COALESCE(SUM(bytes), 0) AS bytes FROM "
                "deletions WHERE id > ? AND id <= ? AND state = 'done' GROUP BY rule")

    def __init__(self) -> None:
        self.key: tuple[int, int] | None = None
        self.folded = 0               # ids up to this one are in `base`
        self.base: Totals = {}

    def read(self, index: RecordingIndex, key: tuple[int, int]) -> Totals:
        pending = index.query("SELECT MIN(id) AS id FROM deletions WHERE state = 'pending'")
        newest = index.query("SELECT MAX(id) AS id FROM deletions")[0]["id"] or 0
        if key != self.key or newest < self.folded:   # another index (its inode reused)
            self.key, self.folded, self.base = key, 0, {}
        settled = newest if pending[0]["id"] is None else pending[0]["id"] - 1
        if settled > self.folded:
            self.base = _add(self.base, index.query(self.ROWS_SQL, (self.folded, settled)))
            self.folded = settled
        return _add(self.base, index.query(self.ROWS_SQL, (self.folded, newest)))


def _add(totals: Totals, rows: list) -> Totals:
    out = dict(totals)
    for row in rows:
        count, size = out.get(row["rule"], (0, 0))
        out[row["rule"]] = (count + row["count"], size + row["bytes"])
    return out


class StorageReader:
    def __init__(self) -> None:
        self._forecast: Cached[dict[str, Forecast]] = Cached(FORECAST_EVERY_S)
        self._deletions = DeletionTotals()

    def __call__(self, sources: MetricSources) -> list[Metric]:
        data_dir = require(sources.data_dir, "a data directory")
        retention = retention_in_force(sources.config)
        volume = check_data_dir(data_dir, retention.settings.allow_boot_media)
        usable = GaugeMetricFamily("vigil_storage_volume_usable", "1 when the data directory "
                                   "is on a data volume the recorder may write, else 0")
        usable.add_metric([], 1.0 if volume.ok and data_dir.is_dir() else 0.0)
        if not (volume.ok and data_dir.is_dir()):
            return [usable]
        space = disk_space(data_dir)
        families = [usable, *space_families(space, retention.settings.min_free_percent)]
        try:
            index = RecordingIndex(data_dir, readonly=True)
        except DataLoss:
            return families          # nothing recorded yet: no forecast, no deletions
        try:
            key = index_identity(data_dir)
            policy = RetentionPolicy(retention.settings, retention.cameras)
            forecasts = self._forecast.get(key, sources.clock, lambda: forecast(
                index, policy, space, sources.now_us()))
            deletions = self._deletions.read(index, key)
        finally:
            index.close()
        return families + forecast_families(forecasts) + deletion_families(deletions)


def space_families(space: DiskSpace, min_free_percent: float) -> list[Metric]:
    size = GaugeMetricFamily("vigil_storage_size_bytes", "Size of the data volume",
                             unit="bytes")
    size.add_metric([], space.total_bytes)
    free = GaugeMetricFamily("vigil_storage_free_bytes", "Bytes the recorder can still "
                             "write on the data volume (statvfs f_bavail)", unit="bytes")
    free.add_metric([], space.free_bytes)
    low = GaugeMetricFamily("vigil_storage_low_water_bytes", "Free space at which retention "
                            "deletes (or recording stops, full_disk_action = stop)",
                            unit="bytes")
    low.add_metric([], space.total_bytes * min_free_percent / 100)
    return [size, free, low]


def forecast_families(forecasts: dict[str, Forecast]) -> list[Metric]:
    ahead = GaugeMetricFamily("vigil_storage_retention_forecast_seconds", "How long the "
                              "camera's footage will be kept at its recent bitrate, and the "
                              "limit that decides it (max_age, max_bytes, disk)",
                              labels=["camera", "limited_by"], unit="seconds")
    retained = GaugeMetricFamily("vigil_storage_retained_seconds", "Time from the camera's "
                                 "oldest footage on disk to its newest", labels=["camera"],
                                 unit="seconds")
    held = GaugeMetricFamily("vigil_storage_held_bytes", "Bytes of the camera's footage on "
                             "the data volume", labels=["camera"], unit="bytes")
    for camera, fc in sorted(forecasts.items()):
        retained.add_metric([camera], fc.retained_days * SECONDS_PER_DAY)
        held.add_metric([camera], fc.bytes_held)
        if fc.forecast_days is not None:     # no limit applies, or no rate measured yet
            ahead.add_metric([camera, fc.limited_by], fc.forecast_days * SECONDS_PER_DAY)
    return [ahead, retained, held]


def deletion_families(totals: Totals) -> list[Metric]:
    count = CounterMetricFamily("vigil_storage_deletions", "Segments retention deleted, by "
                                "the rule that deleted them (the deletion audit log)",
                                labels=["rule"])
    size = CounterMetricFamily("vigil_storage_deleted_bytes", "Bytes retention deleted, by "
                               "rule", labels=["rule"], unit="bytes")
    for rule, (segments, deleted) in sorted(totals.items()):
        count.add_metric([rule], segments)
        size.add_metric([rule], deleted)
    return [count, size]
