"""vigil-hwd's system commands through a real ControlServer on a Unix socket in tmp_path,
with the sandbox backend and a persist partition laid out as on the box: settings,
manual time, backup and restore of real files, refusals that change nothing, factory
reset (what goes, what stays), and finishing what a power cut interrupted."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from appliance.cameras.credentials import CredentialStore, Credentials
from appliance.cameras.registry import CameraRegistry
from appliance.config.cameras import build_camera_settings
from appliance.core.control import MAX_LINE
from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.storage.volume import MARKER
from appliance.system import transaction
from appliance.system.backends import SandboxSystem
from appliance.system.backup import MAX_BUNDLE, read_bundle
from appliance.system.control import control_handlers
from tests.unit.system.backup_files import (CAMERA_PASSWORD, PASSPHRASE, USERS, camera_list,
                                            config, entry, good, members, pack)
from tests.unit.system.box import DEFAULTS, Box


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    yield b
    b.close()


def test_settings_through_the_socket(box):
    state = box.call("system.get")
    assert state["settings"]["hostname"] == "vigil-0042"  # the board's default name
    assert state["problem"] is None and state["uptime"] > 0 and not state["restart_needed"]
    answer = box.call("system.set", changes={"hostname": "Garage", "time": {
        "timezone": "Asia/Tokyo"}}, client="127.0.0.1")
    assert answer["settings"]["hostname"] == "garage" and answer["problems"] == []
    assert answer["previous"]["hostname"] == "vigil-0042"
    stored = json.loads((box.paths.config_dir / "system.json").read_text())
    assert stored["hostname"] == "garage" and stored["time"]["timezone"] == "Asia/Tokyo"
    assert box.call("system.get")["time_local"].endswith("+09:00")
    assert os.readlink(box.sandbox.root / "run/vigil/localtime").endswith("Asia/Tokyo")
    assert box.sandbox.commands == [["hostnamectl", "--transient", "hostname", "garage"]]


def test_a_static_address_the_owner_cannot_reach_is_refused(box):
    with pytest.raises(InvalidConfig, match="could no longer reach"):
        box.call("system.set", changes={"network": {"mode": "static",
                                                    "address": "10.0.0.5/24"}},
                 client="192.168.1.50")
    answer = box.call("system.set", changes={"network": {"mode": "static",
                                                         "address": "192.168.1.20/24"}},
                      client="192.168.1.50")
    assert answer["settings"]["network"]["address"] == "192.168.1.20/24"


CANARY = Path("/tmp/canary")
PAYLOADS = ["$(touch /tmp/canary)", "`touch /tmp/canary`", "a;touch /tmp/canary",
            "a|touch /tmp/canary", "a\ntouch /tmp/canary", "a && touch /tmp/canary"]


def test_shell_payloads_in_every_field_are_refused_and_run_nothing(box):
    CANARY.unlink(missing_ok=True)
    before = box.persist_state()
    for payload in PAYLOADS:
        for changes in ({"hostname": payload}, {"time": {"timezone": payload}},
                        {"time": {"ntp_servers": [payload]}},
                        {"network": {"mode": "static", "address": payload}},
                        {"network": {"mode": "static", "address": "192.168.1.20/24",
                                     "gateway": payload}},
                        {"network": {"mode": "static", "address": "192.168.1.20/24",
                                     "dns": [payload]}}):
            with pytest.raises(InvalidConfig):
                box.call("system.set", changes=changes)
        with pytest.raises(InvalidConfig):
            box.call("system.factory_reset", confirm=payload)
    assert not CANARY.exists()
    assert box.persist_state() == before and box.sandbox.commands == []


def test_arguments_are_checked_again_here(box):
    for command, args in (("system.set", {"changes": {}, "shell": "id"}),
                          ("system.set", {"changes": "hostname"}),
                          ("system.set", {"changes": {}, "client": ["1.2.3.4"]}),
                          ("system.set", {"changes": {}, "confirm_other_subnet": "yes"}),
                          ("system.get", {"x": 1}), ("system.backup", {"passphrase": 5}),
                          ("system.backup", {"passphrase": "short"}),
                          ("system.restore", {}), ("system.restore", {"file": "!!"}),
                          ("system.factory_reset", {"confirm": "ERASE",
                                                    "erase_recordings": "yes"})):
        with pytest.raises(InvalidConfig):
            box.call(command, **args)


def test_manual_time_needs_ntp_off(box):
    with pytest.raises(FailedPrecondition, match="turn NTP off"):
        box.call("system.set_time", time="2026-11-23T14:05")
    box.call("system.set", changes={"time": {"ntp": False, "timezone": "Europe/Berlin"}})
    answer = box.call("system.set_time", time="2026-11-23T14:05")
    assert answer["set_to"] == "2026-11-23T13:05:00+00:00"
    assert box.sandbox.commands[-1] == ["timedatectl", "set-time", "2026-11-23 13:05:00 UTC"]
    with pytest.raises(InvalidConfig, match="between"):
        box.call("system.set_time", time="1999-01-01T00:00")


# --- backup and restore ------------------------------------------------------------------------

def test_backup_and_restore_round_trip(box):
    box.call("system.set", changes={"hostname": "garage"})
    answer = box.call("system.backup", users=USERS, passphrase=PASSPHRASE)
    assert answer["name"].startswith("vigil-config-garage-") and answer["sealed"]
    assert answer["files"] == ["cameras.json", "data-volumes.json", "recorder.toml",
                               "system.json"] and answer["camera_credentials"] == 1
    saved = box.persist_state()
    # the owner then changes things...
    box.call("system.set", changes={"hostname": "elsewhere", "time": {"ntp": False}})
    (box.paths.config_dir / "cameras.json").write_bytes(camera_list("door", "yard"))
    CredentialStore(box.paths.camera_secrets).put("door", Credentials("admin", "changed"))
    CredentialStore(box.paths.camera_secrets).put("yard", Credentials("admin", "yard-pass"))
    # ...and restores the backup
    result = box.call("system.restore", file=answer["file"], passphrase=PASSPHRASE)
    assert result["restart_needed"] and result["camera_credentials"] == "restored"
    assert result["summary"]["hostname"] == "garage" and result["summary"]["users"] == 2
    after = box.persist_state()
    assert {k: v for k, v in after.items() if not k.startswith("sandbox")} == \
        {k: v for k, v in saved.items() if not k.startswith("sandbox")}
    # each owner reads its file back
    store = CredentialStore(box.paths.camera_secrets)
    assert store.get("door") == Credentials("admin", CAMERA_PASSWORD)
    assert store.get("yard") is None
    registry = CameraRegistry(box.paths.config_dir / "cameras.json", store,
                              build_camera_settings({}))
    assert [c.id for c in registry.cameras()] == ["door"]
    assert box.call("system.get")["restart_needed"] is True


def test_the_owners_settings_files_go_into_the_backup_and_come_back(box):
    """Retention, recording modes, metrics access, the restream's switch and the PoE
    ports' choices, written by their own writers, are restored as they were; one the
    backup did not hold is removed (its defaults return)."""
    from appliance.metrics.access import load_networks, save_networks
    from appliance.poe.port_choices import PortChoices, load_choices
    from appliance.recorder.recording_settings import (load_recording_settings,
                                                       update_recording_settings)
    from appliance.restream.settings import load_enabled, save_enabled
    from appliance.storage.retention.overrides import (RetentionOverrides, check_changes,
                                                       load_overrides, save_overrides)

    config = box.paths.config_dir
    retention = check_changes(RetentionOverrides(), {}, {"door": {"max_age_days": 9}})
    save_overrides(config / "retention.json", retention)
    update_recording_settings(config / "recording.json", {"door": {"mode": "events"}})
    save_networks(config / "metrics.json", ["192.168.1.0/24"])
    save_enabled(config / "restream.json", True)
    PortChoices(config / "poe-ports.json").remember("Port 3", {"enabled": False})
    recording = load_recording_settings(config / "recording.json")
    answer = box.call("system.backup", users=USERS)
    assert {"retention.json", "recording.json", "metrics.json", "restream.json",
            "poe-ports.json"} <= set(answer["files"])

    save_overrides(config / "retention.json", RetentionOverrides())
    update_recording_settings(config / "recording.json", {"door": {"mode": "off"}})
    (config / "metrics.json").unlink()
    save_enabled(config / "restream.json", False)
    PortChoices(config / "poe-ports.json").remember("Port 3", {"enabled": True})
    box.call("system.restore", file=answer["file"])
    assert load_overrides(config / "retention.json") == retention
    assert load_recording_settings(config / "recording.json") == recording
    assert [str(n) for n in load_networks(config / "metrics.json")] == ["192.168.1.0/24"]
    assert load_enabled(config / "restream.json") is True
    assert load_choices(config / "poe-ports.json") == {"Port 3": {"enabled": False}}

    (config / "poe-ports.json").unlink()
    without_poe = box.call("system.backup", users=USERS)
    PortChoices(config / "poe-ports.json").remember("Port 1", {"priority": "critical"})
    box.call("system.restore", file=without_poe["file"])
    assert not (config / "poe-ports.json").exists()


def test_a_backup_without_passphrase_restores_and_keeps_the_camera_passwords(box):
    answer = box.call("system.backup", users=USERS)
    assert not answer["sealed"] and answer["camera_credentials"] is None
    assert CAMERA_PASSWORD.encode() not in base64.b64decode(answer["file"])
    CredentialStore(box.paths.camera_secrets).put("door", Credentials("admin", "newer"))
    result = box.call("system.restore", file=answer["file"])
    assert result["camera_credentials"] == "kept (not in the backup)"
    assert CredentialStore(box.paths.camera_secrets).get("door").password == "newer"


def test_the_largest_backup_fits_in_one_control_request():
    request = json.dumps({"command": "system.restore", "args": {
        "file": base64.b64encode(b"\xff" * MAX_BUNDLE).decode(),
        "passphrase": "\u00e9" * 256}}).encode() + b"\n"
    assert len(request) < MAX_LINE


def bad_files() -> dict[str, tuple[bytes, str | None]]:
    sealed = good(PASSPHRASE)
    plain = members(good())
    return {
        "corrupt": (sealed[:200] + bytes([sealed[200] ^ 0xFF]) + sealed[201:], PASSPHRASE),
        "truncated": (sealed[: len(sealed) // 2], PASSPHRASE),
        "foreign": (b"PK\x03\x04 a zip file" + b"\0" * 64, None),
        "over 40 KiB": (b"\x1f\x8b" + os.urandom(MAX_BUNDLE), None),
        "../": (pack(plain + [entry("../../persist/config/system.json", b"{}")]), None),
        "absolute": (pack(plain + [entry("/persist/config/system.json", b"{}")]), None),
        "symlink": (pack([(m, c) for m, c in plain if m.name != "users.json"]
                         + [entry("users.json", b"", b"2", "/etc/shadow")]), None),
        "wrong passphrase": (sealed, "not the right passphrase"),
        "bad zone": (good(config={**config(), "system.json": b'{"time": {"timezone": '
                                  b'"../../etc/passwd"}}'}), None),
    }


def test_a_50_mb_file_is_refused_before_it_is_read(box):
    """(The web refuses such a body with 413 before it gets here; the handler still
    refuses it by size first.)"""
    before = box.persist_state()
    with pytest.raises(InvalidConfig, match="at most 40 KiB"):
        box.handlers["system.restore"]({"file": base64.b64encode(
            b"\x1f\x8b" + b"\0" * (50 * 1024 * 1024)).decode()})
    assert box.persist_state() == before


@pytest.mark.parametrize("case", list(bad_files()))
def test_a_bad_backup_is_refused_and_changes_nothing(box, case):
    data, passphrase = bad_files()[case]
    before = box.persist_state()
    with pytest.raises(InvalidConfig) as err:
        box.call("system.restore", file=base64.b64encode(data).decode(),
                 passphrase=passphrase)
    assert str(err.value)  # a reason, in words
    assert box.persist_state() == before
    assert not box.call("system.get")["restart_needed"]


# --- factory reset -----------------------------------------------------------------------------

def test_factory_reset_needs_the_name_or_erase(box):
    box.call("system.set", changes={"hostname": "garage"})
    before = box.persist_state()
    for wrong in ("", "erase", "Garage", "vigil-0042", "ERASE ", None, 1):
        with pytest.raises(InvalidConfig, match=r"type the box's name \(garage\) or ERASE"):
            box.call("system.factory_reset", confirm=wrong)
    assert box.persist_state() == before


def test_factory_reset_keeps_licence_keys_disk_and_recordings(box):
    box.call("system.set", changes={"hostname": "garage", "network": {
        "mode": "static", "address": "192.168.1.20/24"}, "time": {"ntp": False}})
    box.sandbox.commands.clear()
    answer = box.call("system.factory_reset", confirm="garage")
    assert answer["erased"] == ["system.json", "recorder.toml", "cameras.json",
                                "camera credentials", "TLS key and certificate"]
    assert "recordings" in answer["kept"] and "licence" in answer["kept"]
    assert answer["hostname"] == "vigil-0042" and answer["network"] == "DHCP"
    config_dir = box.paths.config_dir
    assert sorted(p.name for p in config_dir.iterdir() if not p.name.startswith(".")) == \
        ["data-volumes.json", "recorder.toml"]
    assert (config_dir / "recorder.toml").read_bytes() == DEFAULTS
    assert list(box.paths.camera_secrets.iterdir()) == []
    assert list(box.paths.adoption_secrets.iterdir()) == []
    assert list(box.paths.tls_dir.iterdir()) == []
    persist = box.root / "persist"
    assert (persist / "licence" / "licence.txt").read_text() == "LICENCE"
    assert (persist / "keys" / "device.pem").read_text() == "DEVICE KEY"
    assert (box.paths.data_dir / "recordings/door/2026-11-23/14/seg.mp4").exists()
    # back to DHCP, NTP on, the default name; the recorder was stopped and started again
    state = box.call("system.get")["settings"]
    assert state == {"version": 1, "hostname": "vigil-0042", "time": {
        "timezone": "UTC", "ntp": True, "ntp_servers": []}, "network": {
        "mode": "dhcp", "address": "", "gateway": "", "dns": []}}
    assert (box.sandbox.root / "run/vigil/hostname").read_text() == "vigil-0042\n"
    assert "DHCP=ipv4" in (box.sandbox.root / "run/systemd/network/10-vigil-lan.network").read_text()
    commands = box.sandbox.commands
    assert commands[0] == ["systemctl", "stop", "vigil-recorder.service"]
    assert commands[-1] == ["systemctl", "start", "vigil-recorder.service"]
    assert ["hostnamectl", "--transient", "hostname", "vigil-0042"] in commands
    assert ["networkctl", "reload"] in commands


def test_factory_reset_erases_the_other_owner_settings_and_the_mqtt_login(box):
    config_dir = box.paths.config_dir
    for name in ("retention.json", "recording.json", "metrics.json", "metrics-token.json",
                 "mqtt.json", "restream.json", "poe-ports.json"):
        (config_dir / name).write_text("{}")
    box.paths.mqtt_secrets.mkdir(parents=True)
    (box.paths.mqtt_secrets / "broker.json").write_text("{}")
    answer = box.call("system.factory_reset", confirm="ERASE")
    for name in ("retention.json", "recording.json", "metrics.json", "metrics-token.json",
                 "mqtt.json", "restream.json", "poe-ports.json", "MQTT login"):
        assert name in answer["erased"]
    assert sorted(p.name for p in config_dir.iterdir() if not p.name.startswith(".")) == \
        ["data-volumes.json", "recorder.toml"]
    assert list(box.paths.mqtt_secrets.iterdir()) == []


def test_factory_reset_can_erase_the_recordings(box):
    answer = box.call("system.factory_reset", confirm="ERASE", erase_recordings=True)
    assert "recordings" in answer["erased"] and "recordings" not in answer["kept"]
    box.service.purging.join(30)
    assert sorted(p.name for p in box.paths.data_dir.iterdir()) == [MARKER]
    assert (box.paths.data_dir.parent / MARKER).exists()


# --- after a power cut -------------------------------------------------------------------------

def test_a_restore_cut_short_is_finished_when_hwd_starts(box, monkeypatch):
    data = good(PASSPHRASE)
    real = transaction.os.replace
    count = []

    def power_cut(src, dst):
        if len(count) == 2:   # the journal and one file are in place
            raise KeyboardInterrupt("power cut")
        count.append(dst)
        return real(src, dst)
    monkeypatch.setattr(transaction.os, "replace", power_cut)
    with pytest.raises(KeyboardInterrupt):   # in process: the power goes mid-restore
        box.handlers["system.restore"]({"file": base64.b64encode(data).decode(),
                                        "passphrase": PASSPHRASE})
    monkeypatch.setattr(transaction.os, "replace", real)
    assert box.paths.journal.exists()
    box.close()
    restarted = control_handlers(SandboxSystem(box.root / "sandbox"), box.paths)
    assert restarted["system.get"]({})["restart_needed"] is True
    assert not box.paths.journal.exists()
    bundle = read_bundle(data, PASSPHRASE)
    for name, content in bundle.config.items():
        assert (box.paths.config_dir / name).read_bytes() == content


def test_an_erase_cut_short_is_finished_when_hwd_starts(box):
    trash = box.paths.data_dir / ".erasing-123"
    (trash / "recordings" / "old").mkdir(parents=True)
    (trash / "recordings" / "old" / "seg.mp4").write_bytes(b"x" * 1000)
    handlers = control_handlers(SandboxSystem(box.root / "sandbox2"), box.paths)
    handlers["system.get"].__self__.purging.join(30)
    assert not trash.exists()
    assert (box.paths.data_dir / "recordings/door/2026-11-23/14/seg.mp4").exists()


def test_a_persist_partition_that_cannot_be_written_gives_a_clear_error(tmp_path):
    box = Box(tmp_path)
    try:
        blocked = box.paths.config_dir / "system.json"
        blocked.mkdir()        # (root ignores file modes: a directory in the way instead)
        with pytest.raises(FailedPrecondition, match="could not be saved"):
            box.call("system.set", changes={"hostname": "garage"})
        assert box.sandbox.commands == []
        data = good(config={**config(), "cameras.json": camera_list("door", "yard")})
        with pytest.raises(FailedPrecondition, match="finished or dropped at the next start"):
            box.call("system.restore", file=base64.b64encode(data).decode())
        assert (box.paths.config_dir / "cameras.json").read_bytes() == config()["cameras.json"]
        # still blocked at the next start: reported, and vigil-hwd still starts
        again = control_handlers(SandboxSystem(box.root / "sandbox"), box.paths)
        assert "could not be finished" in again["system.get"]({})["problem"]
        # once the way is clear, the next start finishes the committed restore
        blocked.rmdir()
        control_handlers(SandboxSystem(box.root / "sandbox"), box.paths)
        assert (box.paths.config_dir / "cameras.json").read_bytes() == camera_list("door", "yard")
        assert not box.paths.journal.exists()
    finally:
        box.close()
