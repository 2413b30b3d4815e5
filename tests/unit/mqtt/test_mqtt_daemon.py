"""The daemon: its unit file and command line, where its queue lives, and settings
applied while it runs."""

from __future__ import annotations

import configparser
import json
import shlex
from pathlib import Path

from appliance.cameras.credentials import Credentials
from appliance.cli import build_parser
from appliance.core.clock import RealClock, SimulatedClock
from appliance.core.sdnotify import SystemdNotifier
from appliance.mqtt.discovery import BoxIdentity
from appliance.mqtt.events import BoxEvent
from appliance.mqtt.service import EXIT_QUEUE_MOVES, MqttPaths, MqttService
from appliance.mqtt.settings import save_credentials
from appliance.storage.alerts import Alert
from appliance.storage.monitor import AlertLog
from appliance.storage.volume import write_marker
from hw.camsim.server import free_port
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "rootfs-overlay/etc/systemd/system/vigil-mqtt.service"
IDENTITY = BoxIdentity("SIM00000001", "testbox", "sim", "0.0.0")


def read_unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return parser


def test_the_unit_runs_the_daemon_hardened_writing_only_its_queue():
    service = read_unit()["Service"]
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) >= 30
    assert service["Restart"] == "always" and service["User"] == "vigil"
    # the queue's move to or from the data disk restarts it, and is no failure
    assert service["SuccessExitStatus"] == str(EXIT_QUEUE_MOVES)
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["CapabilityBoundingSet"] == ""
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/nvr")
    args = build_parser().parse_args(argv[1:])
    assert args.command == "mqtt" and args.action == "run" and not args.allow_boot_media
    writable = service["ReadWritePaths"].split()
    assert writable == ["/srv/vigil"] and args.data.startswith("/srv/vigil/")
    assert Path(args.fallback_queue).parent == Path("/run") / service["RuntimeDirectory"]
    assert service["RuntimeDirectoryPreserve"] == "yes"   # the RAM queue outlives a restart
    assert args.settings.startswith("/persist/config/") and args.state == "/persist/state/storage"
    assert args.secrets in service["ExecStartPre"] and "-o vigil" in service["ExecStartPre"]


def paths(tmp_path: Path, **changes) -> MqttPaths:
    values = dict(settings=tmp_path / "config" / "mqtt.json", secrets=tmp_path / "secrets",
                  data_dir=tmp_path / "data", hwd_state=tmp_path / "state",
                  fallback_queue=tmp_path / "run" / "queue.sqlite3")
    values.update(changes)
    return MqttPaths(**values)


def test_without_a_data_disk_the_queue_is_in_ram_and_moves_to_the_disk(tmp_path):
    (tmp_path / "data").mkdir()
    clock = SimulatedClock()
    service = MqttService(paths(tmp_path), IDENTITY, clock, SystemdNotifier({}))
    service.start()
    assert service.queue.path == tmp_path / "run" / "queue.sqlite3"
    assert service.tick() is True and service.publisher is None   # no settings: off
    ram = service.queue
    ram.put([BoxEvent("disk_alert", 1, "alert:h1", cause="disk:A")])
    write_marker(tmp_path / "data")                       # a data disk is initialised
    clock.advance(5)
    assert service.tick() is False and service.exit_code == EXIT_QUEUE_MOVES
    service.stop()
    again = MqttService(paths(tmp_path), IDENTITY, clock, SystemdNotifier({}))
    again.start()
    assert again.queue.path == tmp_path / "data" / "mqtt-queue.sqlite3"
    assert [json.loads(p.payload)["id"] for p in again.queue.take(5)] == ["alert:h1"]
    assert not (tmp_path / "run" / "queue.sqlite3").exists()
    again.stop()


def test_settings_and_login_changes_apply_while_running(tmp_path):
    settings = tmp_path / "config" / "mqtt.json"
    settings.parent.mkdir()
    (tmp_path / "data").mkdir()
    port = free_port()   # nothing listens there: the publisher keeps trying
    settings.write_text(json.dumps({"format": 1, "enabled": True, "host": "127.0.0.1",
                                    "port": port, "tls": False}))
    service = MqttService(paths(tmp_path, allow_boot_media=True), IDENTITY,
                          notifier=SystemdNotifier({}))
    service.start()
    try:
        first = service.publisher
        assert first is not None and first.credentials is None
        wait_until(lambda: f"cannot connect to 127.0.0.1:{port}" in first.problem, 10,
                   "the publisher to say why it is not connected")
        AlertLog(tmp_path / "state" / "alerts.jsonl", RealClock()).add(
            [Alert("critical", "raid:md0", "md0 failed")])
        service.tick()
        assert len(service.queue) == 1 and service.queue.path.parent == tmp_path / "data"
        save_credentials(tmp_path / "secrets", Credentials("vigil", "pw-1234567890"))
        service.tick()
        assert service.publisher is not first and service.publisher.credentials.username == \
            "vigil"
        settings.write_text(json.dumps({"format": 1, "enabled": False}))
        service.tick()
        assert service.publisher is None
        settings.write_text('{"format": 1, "enabled": true}')   # no host: refused
        service.tick()
        assert service.publisher is None and service.settings.enabled is False
    finally:
        service.stop()
