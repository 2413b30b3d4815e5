"""Where a scrape reads the appliance's state, and the small helpers every reader shares.

A reader that cannot reach its source raises `Unavailable` (missing: the source is down
for this scrape, nothing is wrong with the metrics); anything else it raises counts as an
error of that source (collector.py). Values from another process's JSON are checked one
by one (`number`): a snapshot written by a newer or damaged daemon costs a series, not
the scrape.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from appliance.core.clock import Clock, RealClock
from appliance.core.errors import DataLoss, Unavailable
from appliance.recorder.index import INDEX_NAME, RecordingIndex

T = TypeVar("T")

# systemd puts each service in its own cgroup (v2, Debian's default); its cgroup.procs
# lists the service's processes, readable by any user.
RECORDER_CGROUP = Path("/sys/fs/cgroup/system.slice/vigil-recorder.service")


@dataclass(frozen=True)
class MetricSources:
    """The state a scrape reads; None: this process was not given it (the source is down).

    `licence` returns the licence store (appliance.licensing.store.LicenceStore).
    """

    data_dir: Path | None                  # the recorder's data directory (index, space)
    config: Path | None = None             # the appliance TOML (retention in force)
    registry: Path | None = None           # cameras.json (licensed channels in use)
    hwd_state: Path | None = None          # vigil-hwd's storage.json and poe.json
    licence: Callable[[], Any] | None = None
    recorder_cgroup: Path = RECORDER_CGROUP
    clock: Clock = field(default_factory=RealClock)

    def now_us(self) -> int:
        return int(self.clock.wall() * 1_000_000)


def require(value: Path | None, what: str) -> Path:
    """A configured path, or Unavailable naming what this process was started without."""
    if value is None:
        raise Unavailable(f"this server was started without {what}")
    return Path(value)


def open_index(data_dir: Path | None) -> RecordingIndex:
    """The recorder's index, read-only; Unavailable before the recorder has made one."""
    try:
        return RecordingIndex(require(data_dir, "a data directory"), readonly=True)
    except DataLoss as exc:
        raise Unavailable(str(exc)) from None


def number(value: Any) -> float | None:
    """A finite number from JSON, else None (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def index_identity(data_dir: Path) -> tuple[int, int]:
    """Which index file this is (device, inode): a cache of its figures is dropped when
    the file is another one (a replaced data disk, an index made anew)."""
    st = os.stat(Path(data_dir) / INDEX_NAME)
    return st.st_dev, st.st_ino


class Cached(Generic[T]):
    """A slow query's answer, reused for `seconds` while its key (the index file) stays
    the same. Only the collector's scrape (one at a time) uses it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._key: Any = None
        self._at = 0.0
        self._value: T | None = None

    def get(self, key: Any, clock: Clock, compute: Callable[[], T]) -> T:
        now = clock.monotonic()
        if self._value is None or key != self._key or now - self._at >= self.seconds:
            self._value, self._key, self._at = compute(), key, now
        return self._value
