"""The scrape: one prometheus_client collector that asks every source in turn.

A scrape never fails because one part of the box is missing or unreadable: a source
that raises is left out of that scrape, `vigil_metrics_source_up{source}` says 0, and if
it failed for any reason other than "not there" (Unavailable) the failure is counted in
`vigil_metrics_source_errors_total{source}` and logged once until the source is back.
Scrapes run one at a time (a token holder polling hard gets queued, not parallel SQL).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from appliance.core.errors import Unavailable
from appliance.metrics.box import licence_metrics, recorder_process_metrics, update_metrics
from appliance.metrics.cameras import CameraReader
from appliance.metrics.devices import disk_metrics, poe_metrics
from appliance.metrics.sources import MetricSources
from appliance.metrics.storage import StorageReader

log = logging.getLogger(__name__)

Reader = Callable[[MetricSources], list[Metric]]


def default_readers() -> dict[str, Reader]:
    """Every source by name (the `source` label); the index readers keep caches, so
    each collector has its own."""
    return {"cameras": CameraReader(), "storage": StorageReader(), "disks": disk_metrics,
            "poe": poe_metrics, "licence": licence_metrics,
            "recorder_process": recorder_process_metrics, "update": update_metrics}


class VigilCollector:
    def __init__(self, sources: MetricSources) -> None:
        self.sources = sources
        self.readers = default_readers()
        self.errors = {name: 0 for name in self.readers}
        self._down: dict[str, str] = {}       # source -> why, while it is down
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            families = self._scrape()
        yield from families

    def _scrape(self) -> list[Metric]:
        up = GaugeMetricFamily("vigil_metrics_source_up", "1 when the source was read for "
                               "this scrape, 0 when it is missing or failed", labels=["source"])
        errors = CounterMetricFamily("vigil_metrics_source_errors", "Scrapes in which reading "
                                     "the source failed (missing sources are not counted)",
                                     labels=["source"])
        families: list[Metric] = [up, errors]
        for name, read in self.readers.items():
            found = self._read(name, read)
            up.add_metric([name], 0.0 if found is None else 1.0)
            families.extend(found or ())
        for name, count in self.errors.items():
            errors.add_metric([name], count)
        return families

    def _read(self, name: str, read: Reader) -> list[Metric] | None:
        try:
            found = read(self.sources)
        except Unavailable as exc:
            self._went_down(name, str(exc), logging.INFO)
            return None
        except Exception as exc:  # one broken source must not take the others with it
            self.errors[name] += 1
            self._went_down(name, f"{type(exc).__name__}: {exc}", logging.WARNING)
            return None
        if self._down.pop(name, None) is not None:
            log.info("metrics source=%s readable again", name)
        return found

    def _went_down(self, name: str, why: str, level: int) -> None:
        if self._down.get(name) != why:
            log.log(level, "metrics source=%s left out: %s", name, why)
        self._down[name] = why


def build_registry(sources: MetricSources) -> CollectorRegistry:
    """A registry of its own (not prometheus_client's global one) holding the collector."""
    registry = CollectorRegistry()
    registry.register(VigilCollector(sources))
    return registry


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The scrape's body in the format the scraper asked for (OpenMetrics or the text
    format 0.0.4), and its content type."""
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type
