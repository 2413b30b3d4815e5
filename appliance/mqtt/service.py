"""The MQTT daemon (`nvr mqtt`, unit vigil-mqtt): collect, queue, publish.

The main loop collects events every `poll_interval` and refreshes the retained states
every STATE_EVERY seconds; the publisher thread talks to the broker. The owner's
settings and the broker's login are re-read when their files change: the publisher is
rebuilt, nothing restarts. While MQTT is off (no settings, or enabled = false) the
cursors still move and nothing is queued.

Where the queue lives: on the data disk (`<data>/mqtt-queue.sqlite3`, beside the index its
cursors point into), because the events it holds must survive a power cut and the data
disk is the medium built for steady writes (the SD card is not). While there is no data
disk (not initialised yet, unplugged), the queue is in RAM (`/run/vigil-mqtt`), so that
a disk alert still reaches the broker. When the disk comes or goes the daemon exits with
EXIT_QUEUE_MOVES and systemd starts it again on the other queue; a RAM queue found at start
is appended to the disk queue (its events after the disk's, in order).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from appliance import __version__
from appliance.config.owner_file import WatchedFile
from appliance.core.clock import Clock, RealClock
from appliance.core.errors import DataLoss, InvalidConfig
from appliance.core.sdnotify import SystemdNotifier
from appliance.mqtt.collector import Collector
from appliance.mqtt.discovery import BoxIdentity, discovery_messages
from appliance.mqtt.publisher import Publisher
from appliance.mqtt.queue import EventQueue
from appliance.mqtt.settings import (MqttSettings, load_credentials, load_settings,
                                     this_hostname)
from appliance.mqtt.sources import default_sources
from appliance.mqtt.state import box_health, camera_states, state_messages
from appliance.storage.volume import check_data_dir

log = logging.getLogger(__name__)

QUEUE_NAME = "mqtt-queue.sqlite3"
EXIT_QUEUE_MOVES = 75      # EX_TEMPFAIL: systemd starts us again on the other queue
STATE_EVERY = 5.0
VOLUME_EVERY = 5.0
PUBLISHER_DEADLINE = 30.0  # the publisher thread shows progress at least this often


@dataclass(frozen=True)
class MqttPaths:
    settings: Path             # mqtt.json
    secrets: Path              # the broker's login (directory of mode 0700)
    data_dir: Path             # the recorder's index; the queue when it is a data disk
    hwd_state: Path | None     # vigil-hwd's alert log and snapshots
    fallback_queue: Path       # in RAM, while there is no data disk
    allow_boot_media: bool = False   # development: any data directory counts as a disk

    @property
    def disk_queue(self) -> Path:
        return self.data_dir / QUEUE_NAME


def box_identity(board: str | None) -> BoxIdentity:
    """Serial (the licence's), model and host name for discovery's device block."""
    from hw.board import load_profile
    from hw.identity import NoBoardSerial, board_serial

    from appliance.licensing.cli import default_board

    profile = load_profile(board or default_board())
    try:
        serial = board_serial(profile)
    except NoBoardSerial as exc:
        raise InvalidConfig(str(exc)) from None
    info = profile.get("board", {})
    return BoxIdentity(serial, this_hostname(), str(info.get("description") or
                                                     info.get("name", "Vigil NVR")), __version__)


def open_queue(paths: MqttPaths, on_disk: bool, max_events: int) -> EventQueue:
    """The disk queue (taking over a RAM queue left from before the disk came), or the
    RAM queue while there is no data disk."""
    if not on_disk:
        return EventQueue(paths.fallback_queue, max_events)
    queue = EventQueue(paths.disk_queue, max_events)
    if paths.fallback_queue.exists():
        moved = queue.absorb(paths.fallback_queue)
        log.info("mqtt: %d queued events moved from RAM to the data disk", moved)
    return queue


class MqttService:
    def __init__(self, paths: MqttPaths, identity: BoxIdentity, clock: Clock | None = None,
                 notifier: SystemdNotifier | None = None) -> None:
        self.paths = paths
        self.identity = identity
        self.clock = clock or RealClock()
        self.notifier = notifier or SystemdNotifier()
        self.settings = MqttSettings()
        self.publisher: Publisher | None = None
        self.queue: EventQueue | None = None
        self.collector: Collector | None = None
        self.on_disk = False
        self.exit_code: int | None = None
        self._settings_file = WatchedFile(paths.settings, load_settings)
        # a tuple, so that "changed, and now there is no login" is not read as "unchanged"
        self._secrets_dir = WatchedFile(paths.secrets, lambda path: (load_credentials(path),))
        self._credentials = None
        self._last_state = self._last_volume = float("-inf")

    @property
    def prefix(self) -> str:
        return self.settings.prefix(self.identity.hostname)

    def start(self) -> None:
        self.on_disk = self._disk_ok()
        self._reload_settings()
        self.queue = open_queue(self.paths, self.on_disk, self.settings.queue_max_events)
        self.collector = Collector(self.queue, default_sources(self.paths.data_dir,
                                                               self.paths.hwd_state), self.clock)
        self._rebuild_publisher()
        self.notifier.ready()

    def _disk_ok(self) -> bool:
        return check_data_dir(self.paths.data_dir, self.paths.allow_boot_media).ok and \
            self.paths.data_dir.is_dir()

    # --- settings -------------------------------------------------------------------------
    def _reload_settings(self) -> bool:
        """True when the settings or the login changed (a damaged file keeps the old)."""
        changed = False
        try:
            settings = self._settings_file.changed()
            if settings is not None:
                changed, self.settings = True, settings
            login = self._secrets_dir.changed()
            if login is not None:
                changed, self._credentials = True, login[0]
        except DataLoss as exc:
            log.error("mqtt settings not applied: %s", exc)
        return changed

    def _rebuild_publisher(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
            self.publisher = None
        self.queue.max_events = self.settings.queue_max_events
        if not self.settings.enabled:
            log.info("mqtt off (%s)", "enabled is false" if self.paths.settings.exists()
                     else f"no {self.paths.settings}")
            return
        log.info("mqtt to %s:%d (TLS %s), topics under %s", self.settings.host,
                 self.settings.effective_port, "on" if self.settings.tls else "OFF", self.prefix)
        self.publisher = Publisher(self.settings, self._credentials, self.prefix,
                                   f"vigil-{self.identity.serial}", self.queue, self.clock)
        self._last_state = float("-inf")
        self.publisher.start()

    # --- the loop ---------------------------------------------------------------------------
    def tick(self) -> bool:
        """One pass of the main loop; False when the process must end (see exit_code)."""
        now = self.clock.monotonic()
        if self._reload_settings():
            self._rebuild_publisher()
        try:
            self.collector.collect(keep=self.settings.enabled)
        except sqlite3.Error as exc:
            log.error("mqtt queue %s: %s", self.queue.path, exc)
            return self._end(EXIT_QUEUE_MOVES)
        if self.publisher is not None and now - self._last_state >= STATE_EVERY:
            self._last_state = now
            self.publisher.set_retained(self.retained_messages())
        if now - self._last_volume >= VOLUME_EVERY:
            self._last_volume = now
            if self._disk_ok() != self.on_disk:
                log.info("mqtt: the data disk %s: the queue moves", "came" if not self.on_disk
                         else "went away")
                return self._end(EXIT_QUEUE_MOVES)
        self._report(now)
        return True

    def retained_messages(self) -> dict[str, str]:
        now_us = int(self.clock.wall() * 1e6)
        cameras = camera_states(self.paths.data_dir, now_us)
        health = box_health(self.paths.data_dir, self.paths.hwd_state,
                            self.paths.allow_boot_media)
        messages = state_messages(self.prefix, cameras, health)
        if self.settings.discovery:
            messages.update(discovery_messages(self.identity, self.settings.discovery_prefix,
                                               self.prefix, sorted(cameras),
                                               health["poe_budget_w"] is not None))
        return messages

    def _report(self, now: float) -> None:
        """systemd status, and the watchdog while the publisher thread makes progress."""
        queued = len(self.queue)
        if self.publisher is None:
            text = "MQTT off"
        elif self.publisher.connected:
            text = f"connected to {self.publisher.address}; {queued} events queued"
        else:
            text = f"{self.publisher.problem or 'connecting'}; {queued} events queued"
        self.notifier.status(text)
        if self.publisher is None or now - self.publisher.heartbeat <= PUBLISHER_DEADLINE:
            self.notifier.watchdog()
        else:
            log.error("watchdog not fed: the mqtt thread made no progress for %.0f s",
                      now - self.publisher.heartbeat)

    def _end(self, code: int) -> bool:
        self.exit_code = code
        return False

    def stop(self) -> None:
        self.notifier.stopping()
        if self.publisher is not None:
            self.publisher.close()
        for source in self.collector.sources if self.collector else []:
            close = getattr(source, "close", None)
            if close:
                close()
        if self.queue is not None:
            self.queue.close()
