"""The metrics a scrape exports, read from real files (conftest.py's box), and a scrape
that goes on when sources are missing or damaged."""

from __future__ import annotations

import json
import os
import shutil
import time

import psutil
import pytest

import appliance
from appliance.metrics.cameras import CAMERA_STATES
from appliance.metrics.collector import build_registry, exposition
from appliance.metrics.sources import MetricSources
from appliance.recorder.index import RecordingIndex, Segment
from appliance.storage.retention.policy import disk_space
from tests.unit.metrics.conftest import SEGMENT_BYTES, US, parse, value

SOURCES = ("cameras", "storage", "disks", "poe", "licence", "recorder_process", "update")


def test_every_source_of_a_whole_box_is_read(box):
    samples = box.scrape()
    for source in SOURCES:
        assert value(samples, "vigil_metrics_source_up", source=source) == 1, source
        assert value(samples, "vigil_metrics_source_errors_total", source=source) == 0


def test_cameras_from_the_recorders_index(box):
    s = box.scrape()
    current = {dict(labels)["state"] for (name, labels), v in s.items()
               if name == "vigil_camera_state" and dict(labels)["camera"] == "door" and v == 1}
    assert current == {"recording"}
    assert all(("vigil_camera_state", (("camera", "door"), ("state", st))) in s
               for st in CAMERA_STATES)              # every state a series: alerts compare
    assert value(s, "vigil_camera_recording", camera="door") == 1
    # yard's status says recording, but the recorder stopped writing it 100 s ago
    assert value(s, "vigil_camera_state", camera="yard", state="recording") == 1
    assert value(s, "vigil_camera_recording", camera="yard") == 0
    assert value(s, "vigil_camera_status_age_seconds", camera="yard") == pytest.approx(100)
    assert value(s, "vigil_camera_bitrate_bits_per_second", camera="door") == 4_000_000
    assert value(s, "vigil_camera_received_bytes_total", camera="door") == 123_456
    assert value(s, "vigil_camera_reconnects_total", camera="door") == 2
    # three 60 s segments, the middle one's file missing: 120 s
    assert value(s, "vigil_camera_recorded_seconds", camera="door") == 120
    assert value(s, "vigil_camera_last_segment_age_seconds", camera="door") == 420
    assert value(s, "vigil_camera_gap_seconds", camera="door", cause="camera_unreachable") == 30
    assert value(s, "vigil_camera_gap_seconds", camera="door", cause="auth_failed") == 20


def test_an_ongoing_gap_grows_with_the_clock(box):
    box.sources.clock.advance(40)
    s = box.scrape()
    assert value(s, "vigil_camera_gap_seconds", camera="door", cause="auth_failed") == 60
    assert value(s, "vigil_camera_gap_seconds", camera="door", cause="camera_unreachable") == 30


def test_the_pass_over_every_segment_is_kept_a_minute_the_rest_is_fresh(box):
    """Footage sums and the forecast read every segment row: kept for 60 s. A segment
    closing shows in the newest segment's age at the next scrape, in the sums a minute
    later, and at once when the index file is another one."""
    registry = build_registry(box.sources)
    scrape = lambda: parse(exposition(registry, None)[0].decode())  # noqa: E731
    assert value(scrape(), "vigil_camera_recorded_seconds", camera="door") == 120
    index = RecordingIndex(box.sources.data_dir)
    index.add_segment(Segment("door", 9, box.now_us - 60 * US, box.now_us, SEGMENT_BYTES,
                              "recordings/door/9.mp4"))
    index.close()
    s = scrape()
    assert value(s, "vigil_camera_last_segment_age_seconds", camera="door") == 0
    assert value(s, "vigil_camera_recorded_seconds", camera="door") == 120
    assert value(s, "vigil_storage_held_bytes", camera="door") == 2 * SEGMENT_BYTES
    box.sources.clock.advance(60)
    s = scrape()
    assert value(s, "vigil_camera_recorded_seconds", camera="door") == 180
    assert value(s, "vigil_storage_held_bytes", camera="door") == 3 * SEGMENT_BYTES
    os.rename(box.sources.data_dir, box.root / "old-data")    # another disk, another index
    RecordingIndex(box.sources.data_dir).close()
    s = scrape()
    assert ("vigil_camera_recorded_seconds", (("camera", "door"),)) not in s
    assert ("vigil_storage_deletions_total", (("rule", "max_age"),)) not in s


def test_deletions_are_counted_once_they_are_done(box):
    """A deletion is pending between its audit entry and the unlink; it counts when done,
    also when later ones finished first, and old rows are not read again."""
    registry = build_registry(box.sources)
    scrape = lambda: parse(exposition(registry, None)[0].decode())  # noqa: E731
    index = RecordingIndex(box.sources.data_dir)
    first = index.segments("door")[0]
    slow = index.begin_deletion(first, "disk", "low water", box.now_us)
    later = index.segments("door")[-1]
    fast = index.begin_deletion(later, "disk", "low water", box.now_us)
    index.finish_deletion(fast, later.path)
    s = scrape()
    assert value(s, "vigil_storage_deletions_total", rule="disk") == 1
    assert value(s, "vigil_storage_deletions_total", rule="max_age") == 1
    index.finish_deletion(slow, first.path)
    index.close()
    s = scrape()
    assert value(s, "vigil_storage_deletions_total", rule="disk") == 2
    assert value(s, "vigil_storage_deleted_bytes_total", rule="disk") == 2 * SEGMENT_BYTES
    assert value(scrape(), "vigil_storage_deletions_total", rule="disk") == 2   # not twice
    shutil.rmtree(box.sources.data_dir)            # an index made anew (its inode reused?)
    RecordingIndex(box.sources.data_dir).close()
    assert not [name for name, _ in scrape() if name.startswith("vigil_storage_delet")]


def test_storage_space_forecast_and_deletions(box):
    s = box.scrape()
    space = disk_space(box.sources.data_dir)
    assert value(s, "vigil_storage_volume_usable") == 1
    assert value(s, "vigil_storage_size_bytes") == space.total_bytes
    assert value(s, "vigil_storage_free_bytes") == pytest.approx(space.free_bytes, rel=0.01)
    assert value(s, "vigil_storage_low_water_bytes") == pytest.approx(space.total_bytes * 0.05)
    forecast = {dict(labels)["limited_by"]: v for (name, labels), v in s.items()
                if name == "vigil_storage_retention_forecast_seconds"}
    # 30 days of age limit, or the disk at door's rate, whichever comes first
    assert len(forecast) == 1 and 0 < next(iter(forecast.values())) <= 30 * 86_400
    assert set(forecast) <= {"max_age", "disk"}
    assert value(s, "vigil_storage_retained_seconds", camera="door") == 180
    assert value(s, "vigil_storage_held_bytes", camera="door") == 2 * SEGMENT_BYTES
    assert value(s, "vigil_storage_deletions_total", rule="max_age") == 1
    assert value(s, "vigil_storage_deleted_bytes_total", rule="max_age") == 1_500_000


def test_disks_and_raid_from_vigil_hwds_snapshot(box):
    s = box.scrape()
    assert value(s, "vigil_disk_smart_healthy", device="/dev/sda") == 1
    assert value(s, "vigil_disk_smart_healthy", device="/dev/sdb") == 0
    assert value(s, "vigil_disk_smart_verdict", device="/dev/sdb", verdict="critical") == 1
    assert value(s, "vigil_disk_smart_verdict", device="/dev/sdb", verdict="healthy") == 0
    assert value(s, "vigil_disk_temperature_celsius", device="/dev/sdb") == 38
    assert value(s, "vigil_disk_power_on_seconds", device="/dev/sdb") == 27611 * 3600
    assert value(s, "vigil_disk_power_cycles", device="/dev/sdb") == 112
    assert value(s, "vigil_disk_smart_attribute", device="/dev/sdb",
                 attribute="reallocated_sectors") == 1976
    assert value(s, "vigil_disk_smart_attribute", device="/dev/sdb",
                 attribute="pending_sectors") == 24
    assert value(s, "vigil_disk_info", device="/dev/sdb", model="ST3000DM001-1CH166",
                 serial="Z1F41ABC", firmware="CC27", protocol="ATA") == 1
    assert value(s, "vigil_raid_state", array="md0", state="rebuilding") == 1
    assert value(s, "vigil_raid_state", array="md0", state="healthy") == 0
    assert value(s, "vigil_raid_sync_progress_ratio", array="md0",
                 action="recover") == pytest.approx(0.234)
    assert value(s, "vigil_raid_sync_remaining_seconds", array="md0") == 7698
    assert value(s, "vigil_raid_devices", array="md0") == 2
    assert value(s, "vigil_raid_working_devices", array="md0") == 1
    assert value(s, "vigil_raid_faulty_devices", array="md0") == 0


def test_poe_ports_and_budget_from_the_poe_snapshot(box):
    s = box.scrape()
    snapshot = json.loads((box.sources.hwd_state / "poe.json").read_text())
    assert value(s, "vigil_poe_budget_watts") == 120
    assert value(s, "vigil_poe_allocated_watts") == snapshot["allocated_w"] > 0
    assert value(s, "vigil_poe_power_watts") == snapshot["measured_w"] > 0
    assert value(s, "vigil_poe_input_voltage_volts") == 53.5
    port1 = {"port": "1", "label": "Port 1"}
    assert value(s, "vigil_poe_port_state", **port1, state="powered") == 1
    assert value(s, "vigil_poe_port_state", **port1, state="searching") == 0
    assert value(s, "vigil_poe_port_power_watts", **port1) == pytest.approx(6.5, abs=0.5)
    assert value(s, "vigil_poe_port_allocated_watts", **port1) > 0
    assert value(s, "vigil_poe_port_state", port="8", label="Port 8", state="searching") == 1
    assert value(s, "vigil_poe_port_enabled", **port1) == 1
    assert value(s, "vigil_poe_controller_up", controller="0x20") == 1
    assert value(s, "vigil_poe_controller_temperature_celsius", controller="0x20") > 0


def test_licence_channels_used_and_allowed(box):
    s = box.scrape()
    assert value(s, "vigil_licence_channels_allowed") == 16
    assert value(s, "vigil_licence_valid") == 1
    assert value(s, "vigil_licence_channels_used") == 1          # yard is disabled
    assert value(s, "vigil_licence_expiry_timestamp_seconds") == 1_909_094_400  # 2030-07-01Z


def test_recorder_process_cpu_and_memory_from_its_cgroup(box):
    (box.sources.recorder_cgroup / "cgroup.procs").write_text(f"{os.getpid()}\n4194304\n")
    before = psutil.Process().cpu_times()
    s = box.scrape()
    after = psutil.Process().cpu_times()
    cpu = value(s, "vigil_recorder_cpu_seconds_total")
    assert before.user + before.system <= cpu <= after.user + after.system
    rss = psutil.Process().memory_info().rss
    assert value(s, "vigil_recorder_resident_memory_bytes") == pytest.approx(rss, rel=0.2)


def test_the_running_version(box):
    assert value(box.scrape(), "vigil_update_info", version=appliance.__version__) == 1


def test_a_box_with_nothing_yet_still_scrapes(tmp_path):
    """No index, no vigil-hwd, no licence, no recorder service: every source but the
    version is down, none of them is an error."""
    sources = MetricSources(data_dir=tmp_path / "data", config=tmp_path / "none.toml",
                            registry=tmp_path / "cameras.json", hwd_state=tmp_path / "state",
                            recorder_cgroup=tmp_path / "no-cgroup")
    body, content_type = exposition(build_registry(sources), None)
    s = parse(body.decode())
    assert content_type.startswith("text/plain")
    for source in SOURCES:
        up = value(s, "vigil_metrics_source_up", source=source)
        assert up == (1 if source in ("update", "storage") else 0), source
        assert value(s, "vigil_metrics_source_errors_total", source=source) == 0
    # storage: the data directory does not exist, so it is not a usable volume
    assert value(s, "vigil_storage_volume_usable") == 0
    assert not [name for name, _ in s if name.startswith(("vigil_camera_", "vigil_disk_"))]


def test_sources_not_given_to_the_server_are_down(tmp_path):
    s = parse(exposition(build_registry(MetricSources(data_dir=None)), None)[0].decode())
    assert {dict(k)["source"]: v for (name, k), v in s.items()
            if name == "vigil_metrics_source_up"} == {name: 0 if name != "update" else 1
                                                       for name in SOURCES}


def test_damaged_sources_are_counted_and_the_rest_is_exported(box):
    """A damaged index (both readers of it fail), a storage snapshot full of wrong types
    and a PoE snapshot that is not JSON: counted, logged, and the others still there."""
    (box.sources.data_dir / "index.sqlite3").write_bytes(b"this is not a database" * 100)
    for name in ("index.sqlite3-wal", "index.sqlite3-shm"):
        (box.sources.data_dir / name).unlink(missing_ok=True)
    state = box.sources.hwd_state
    (state / "storage.json").write_text(json.dumps({
        "time": time.time(), "smart": {"/dev/sda": {"verdict": 5, "temperature_c": "hot",
                                                    "counters": ["x"]}, "/dev/sdb": "??"},
        "raid": {"md0": {"state": "exploded", "progress_percent": True, "members": "x"}}}))
    (state / "poe.json").write_text("{not json")
    registry = build_registry(box.sources)
    for scrape in (1, 2):
        s = parse(exposition(registry, None)[0].decode())
        assert value(s, "vigil_metrics_source_up", source="cameras") == 0
        assert value(s, "vigil_metrics_source_errors_total", source="cameras") == scrape
        assert value(s, "vigil_metrics_source_errors_total", source="storage") == scrape
        assert value(s, "vigil_metrics_source_up", source="poe") == 0     # missing, not an error
        assert value(s, "vigil_metrics_source_errors_total", source="poe") == 0
    assert value(s, "vigil_metrics_source_up", source="disks") == 1
    assert value(s, "vigil_disk_smart_verdict", device="/dev/sda", verdict="5") == 1
    assert ("vigil_disk_temperature_celsius", (("device", "/dev/sda"),)) not in s
    assert value(s, "vigil_raid_state", array="md0", state="exploded") == 1
    assert value(s, "vigil_licence_channels_allowed") == 16
    assert value(s, "vigil_update_info", version=appliance.__version__) == 1
