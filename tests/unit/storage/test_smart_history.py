"""SMART trends: alerts when a counter rises, the verdict changes or a disk gets hot."""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path

import pytest

from appliance.storage.smart import (
    DiskSmart, SmartHistory, SmartSnapshot, parse_smartctl, smart_alerts, snapshot_of,
)

SMARTCTL = Path(__file__).resolve().parents[2] / "fixtures" / "storage" / "smartctl"
WD = "/dev/sda (WDC WD40PURZ-85AKKY0 WD-WX12D1234567)"


def disk(name: str = "sata-hdd-healthy.json", raws: dict[int, int] | None = None,
         temperature: int | None = None) -> DiskSmart:
    doc = json.loads((SMARTCTL / name).read_text())
    for attribute in doc.get("ata_smart_attributes", {}).get("table", []):
        if raws and attribute["id"] in raws:
            attribute["raw"] = {"value": raws[attribute["id"]], "string": str(raws[attribute["id"]])}
    if temperature is not None:
        doc["temperature"]["current"] = temperature
    return parse_smartctl(None, json.dumps(doc), "/dev/sda")


def summary(alerts):
    return [(a.severity, a.source, a.message) for a in alerts]


def test_a_healthy_disk_that_does_not_change_never_alerts(tmp_path):
    history = SmartHistory(tmp_path / "smart.json")
    for _ in range(3):
        assert history.observe(disk(temperature=36)) == []
    assert history.save() is True
    assert history.observe(disk(temperature=38)) == []
    assert history.observe(disk(raws={193: 4200, 9: 14900})) == []
    assert history.save() is False  # warmer, more head parks: not worth a flash write
    size = history.path.stat().st_size
    assert size < 600, size


def test_first_reallocations_alert_once_as_a_verdict_change():
    before = snapshot_of(disk(), None)
    alerts = smart_alerts(before, disk(raws={5: 8}))
    assert summary(alerts) == [("warning", "smart:WD-WX12D1234567",
                                f"{WD}: warning: 8 reallocated sectors")]
    assert alerts[0].key == "smart:WD-WX12D1234567:verdict"


def test_a_counter_rising_on_an_already_warned_disk_alerts_on_its_own():
    before = snapshot_of(disk(raws={197: 2}), None)
    alerts = smart_alerts(before, disk(raws={197: 5}))
    assert summary(alerts) == [("warning", "smart:WD-WX12D1234567",
                                f"{WD}: pending sectors rose from 2 to 5")]
    assert smart_alerts(before, disk(raws={197: 1})) == []  # remapped: fewer is no alarm


def test_crc_errors_point_at_the_cable():
    before = snapshot_of(disk(raws={199: 3}), None)
    assert summary(smart_alerts(before, disk(raws={199: 40})))[0][2] == (
        f"{WD}: UDMA CRC errors rose from 3 to 40: check the SATA cable or USB bridge "
        "(a link fault, not the disk)")


def test_verdict_changes():
    healthy = snapshot_of(disk(), None)
    failing = disk("sata-hdd-selftest-failed.json")
    assert [a.severity for a in smart_alerts(healthy, failing)] == ["critical"]
    warned = snapshot_of(disk(raws={197: 3}), None)
    assert summary(smart_alerts(warned, disk())) == [
        ("info", "smart:WD-WX12D1234567", f"{WD}: SMART healthy again")]
    critical = snapshot_of(failing, None)
    assert smart_alerts(critical, failing) == []  # same verdict, same counters
    assert summary(smart_alerts(critical, disk(raws={197: 3}))) == [
        ("info", "smart:WD-WX12D1234567", f"{WD}: warning: 3 pending sectors")]


def test_first_sight():
    assert smart_alerts(None, disk()) == []
    assert [a.severity for a in smart_alerts(None, disk("sata-hdd-failing.json"))] == ["critical"]
    usb = parse_smartctl(None, (SMARTCTL / "usb-unknown-bridge.json").read_text(), "/dev/sdb")
    assert summary(smart_alerts(None, usb)) == [
        ("info", "smart:/dev/sdb",
         "/dev/sdb: SMART unavailable: /dev/sdb: Unknown USB bridge [0x152d:0x0578 (0x214)]")]


def test_losing_smart_on_a_disk_that_had_it_is_a_warning():
    readable = snapshot_of(disk(), None)
    lost = DiskSmart("/dev/sda", "unavailable", "unavailable", ("x",), message="bridge reset",
                     serial="WD-WX12D1234567")
    assert summary(smart_alerts(readable, lost)) == [
        ("warning", "smart:WD-WX12D1234567", "/dev/sda (WD-WX12D1234567): SMART unavailable: "
                                             "bridge reset")]


def test_temperature_crossings_with_hysteresis(tmp_path):
    history = SmartHistory(tmp_path / "smart.json")
    steps = [(50, []), (56, [("warning", "temperature 56 C reached the warning limit of 55 C; "
                                         "improve airflow")]),
             (54, []), (56, []), (61, [("critical", "temperature 61 C reached the critical limit "
                                                    "of 60 C; improve airflow")]),
             (58, []), (56, []), (51, [("info", "temperature back to 51 C")])]
    for temperature, expected in steps:
        alerts = history.observe(disk(temperature=temperature))
        assert [(a.severity, a.message.split(": ", 1)[1]) for a in alerts] == expected, temperature
    ssd = history.observe(disk("sata-ssd-healthy.json", temperature=60))
    assert ssd == []  # SSD limits are higher


def test_standby_polls_keep_the_baseline():
    history_before = snapshot_of(disk(raws={197: 2}), None)
    asleep = parse_smartctl(None, (SMARTCTL / "sata-hdd-standby.json").read_text(), "/dev/sda")
    asleep = DiskSmart(**{**asleep.__dict__, "serial": "WD-WX12D1234567"})
    assert smart_alerts(history_before, asleep) == []
    kept = snapshot_of(asleep, history_before)
    assert (kept.verdict, kept.counters["pending_sectors"]) == ("warning", 2)
    assert summary(smart_alerts(kept, disk(raws={197: 6})))[0][2].endswith("rose from 2 to 6")


def test_history_survives_a_restart(tmp_path):
    path = tmp_path / "state" / "smart.json"
    history = SmartHistory(path)
    history.observe(disk(raws={197: 2}))
    history.save()
    data = json.loads(path.read_text())
    assert data["version"] == 1
    assert data["disks"]["WD-WX12D1234567"]["counters"]["pending_sectors"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["smart.json"]  # no temp file left
    again = SmartHistory(path)
    assert again.get("WD-WX12D1234567") == history.get("WD-WX12D1234567")
    assert summary(again.observe(disk(raws={197: 9})))[0][2] == f"{WD}: pending sectors rose from 2 to 9"


@pytest.mark.parametrize("content", ["{not json", '{"version": 99, "disks": {}}', "[]",
                                     '{"version": 1, "disks": 3}'])
def test_a_damaged_history_starts_over(tmp_path, caplog, content):
    path = tmp_path / "smart.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="appliance.storage.smart"):
        history = SmartHistory(path)
    assert history.snapshots() == {}
    assert "starting a new one" in caplog.text


def test_bad_entries_are_dropped_good_ones_kept(tmp_path):
    path = tmp_path / "smart.json"
    good = {"device": "/dev/sda", "model": "m", "verdict": "warning", "temperature_level": "normal",
            "counters": {"pending_sectors": 2}}
    bad = [dict(good, verdict="fine"), dict(good, counters={"x": "2"}), dict(good, counters=[]),
           dict(good, temperature_level="hot"), "nonsense", dict(good, counters={"x": True})]
    path.write_text(json.dumps({"version": 1, "disks": {"A": good, **{f"B{i}": b for i, b in
                                                                        enumerate(bad)}}}))
    assert list(SmartHistory(path).snapshots()) == ["A"]
    assert SmartHistory(path).get("A") == SmartSnapshot("A", "/dev/sda", "m", "warning", "normal",
                                                        {"pending_sectors": 2})


def test_a_crash_while_saving_leaves_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "smart.json"
    history = SmartHistory(path)
    history.observe(disk())
    history.save()
    old = path.read_bytes()
    history.observe(disk(raws={5: 8}))

    def power_cut(src, dst):
        raise OSError("power cut")
    monkeypatch.setattr(os, "replace", power_cut)
    with pytest.raises(OSError):
        history.save()
    assert path.read_bytes() == old
    monkeypatch.undo()
    assert history.save() is True  # still dirty: the next save writes it
    assert json.loads(path.read_text())["disks"]["WD-WX12D1234567"]["verdict"] == "warning"


def test_disks_without_serial_are_followed_by_device_and_observe_all(tmp_path):
    history = SmartHistory(tmp_path / "smart.json")
    usb = parse_smartctl(None, (SMARTCTL / "usb-unknown-bridge.json").read_text(), "/dev/sdb")
    alerts = history.observe_all([disk(), usb, copy.deepcopy(usb)])
    assert [a.severity for a in alerts] == ["info"]
    assert sorted(history.snapshots()) == ["WD-WX12D1234567", "device:/dev/sdb"]
