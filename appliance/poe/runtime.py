"""Running the PoE manager on a board: the real I2C bus, or the simulated one.

A board profile with `[pse.sim]` is a simulated board: its controllers are the
register-accurate TPS23861 simulator (hw/pse/tps23861_sim.py) on a simulated bus, with
the devices the profile plugs in. Otherwise the profile's I2C bus is opened with smbus2.
The manager's snapshot is written (atomically) to `<state>/poe.json` after every poll,
which `nvr health` and later the web UI read.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from pathlib import Path
from typing import Any, Callable

from appliance.core.clock import Clock, RealClock
from appliance.core.errors import Unavailable
from appliance.core.files import atomic_write, read_fresh_json
from appliance.poe.manager import PoeManager
from appliance.poe.port_choices import choices_for_board
from appliance.poe.settings import build_poe_settings
from appliance.storage.alerts import Alert

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "poe.json"


def open_bus(profile: dict[str, Any], clock: Clock):
    from hw.pse.board import parse_pse

    layout = parse_pse(profile)
    if layout.sim is not None:
        from hw.pse.tps23861_sim import SimulatedBus

        return SimulatedBus.from_layout(layout, clock.monotonic)
    try:
        import smbus2

        return smbus2.SMBus(layout.i2c_bus)
    except OSError as exc:
        raise Unavailable(f"the PoE controllers' I2C bus {layout.i2c_bus} cannot be opened "
                          f"({exc.strerror})") from None


def build_manager(profile: dict[str, Any], settings: dict[str, Any] | None = None,
                  clock: Clock | None = None,
                  alert_sink: Callable[[list[Alert]], None] | None = None,
                  choices: Path | None = None) -> tuple[PoeManager, Any]:
    """The manager on the profile's bus, with `[poe]` settings and, from the file
    `choices` (poe-ports.json), the owner's run-time choices per port on top."""
    from hw.pse.board import parse_pse

    clock = clock or RealClock()
    config = build_poe_settings(settings or {})
    if choices is not None:
        labels = [port.label for port in parse_pse(profile).ports]
        config = dataclasses.replace(config, owner=choices_for_board(choices, labels))
    bus = open_bus(profile, clock)
    manager = PoeManager.from_profile(profile, bus, config=config, clock=clock,
                                      alert_sink=alert_sink)
    return manager, bus


class PoeService:
    """The manager's loop in a thread, writing its snapshot after every poll."""

    def __init__(self, manager: PoeManager, state_dir: Path | None,
                 after_poll: Callable[[], Any] | None = None) -> None:
        self.manager = manager
        self.state_dir = state_dir
        self.after_poll = after_poll  # e.g. stall recovery
        self.stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        interval = self.manager.settings.poll_interval
        while not self.stop.is_set():
            try:
                self.manager.poll()
                if self.state_dir is not None:
                    write_snapshot(self.state_dir, self.manager.snapshot().to_json())
                if self.after_poll is not None:
                    self.after_poll()
            except Exception:  # one bad poll must not end PoE management
                log.exception("poe poll failed")
            self.stop.wait(interval)


def write_snapshot(state_dir: Path, data: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(state_dir / SNAPSHOT_NAME, json.dumps(data, sort_keys=True).encode(),
                 durable=False)


def read_snapshot(state_dir: Path, max_age: float = 60.0) -> dict[str, Any] | None:
    return read_fresh_json(Path(state_dir) / SNAPSHOT_NAME, max_age)


def recorder_stall_check(manager: PoeManager, data_dir: Path, camera_ports: Callable[[], dict],
                         stall_seconds: float, clock: Clock | None = None) -> Callable[[], Any]:
    """Stall recovery fed from the recorder's index (statuses in, notes out); a missing
    data disk or index just skips the check."""
    from appliance.core.errors import DataLoss
    from appliance.poe.stall import StallRecovery
    from appliance.recorder.index import RecordingIndex

    def statuses() -> dict:
        try:
            index = RecordingIndex(data_dir, readonly=True)
        except (DataLoss, OSError):
            return {}
        try:
            return index.statuses()
        finally:
            index.close()

    def note(camera: str, time_us: int, text: str) -> None:
        index = RecordingIndex(data_dir)
        try:
            index.add_note(camera, time_us, text)
        finally:
            index.close()

    stall = StallRecovery(manager, statuses, camera_ports, note, clock or RealClock(),
                          stall_seconds)

    def check() -> None:
        try:
            stall.check()
        except Exception:
            log.exception("stall recovery check failed")
    return check
