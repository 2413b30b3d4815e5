"""SMART readings from smartctl 7.3 JSON: our samples, real captures and the real binary."""

from __future__ import annotations

import copy
import json
import random
import shutil
from pathlib import Path

import pytest

from appliance.storage.smart import (
    OVERALLS, VERDICTS, DiskSmart, SmartReader, decode_exit_status, parse_smartctl,
    smartctl_argv, temperature_level,
)

SMARTCTL = Path(__file__).resolve().parents[2] / "fixtures" / "storage" / "smartctl"


def load(name: str) -> dict:
    return json.loads((SMARTCTL / name).read_text())


def compact(doc: dict) -> str:
    return json.dumps(doc, separators=(",", ":"))  # what --json=c prints


def reading(doc: dict | str, code: int | None = None, device: str = "/dev/sdx") -> DiskSmart:
    return parse_smartctl(code, doc if isinstance(doc, str) else compact(doc), device)


def set_raw(doc: dict, ident: int, value: int) -> dict:
    doc = copy.deepcopy(doc)
    for attribute in doc["ata_smart_attributes"]["table"]:
        if attribute["id"] == ident:
            attribute["raw"] = {"value": value, "string": str(value)}
    return doc


# fixture -> (overall, verdict, protocol, model, serial, temperature, power-on hours)
FIXTURES = {
    "sata-hdd-healthy.json": ("passed", "healthy", "ATA", "WDC WD40PURZ-85AKKY0",
                              "WD-WX12D1234567", 34, 14873),
    "sata-hdd-failing.json": ("failing", "critical", "ATA", "ST3000DM001-1CH166", "Z1F41ABC",
                              38, 27611),
    "sata-hdd-selftest-failed.json": ("passed", "critical", "ATA", "WDC WD30EFRX-68EUZN0",
                                      "WD-WCC4N7KX9012", 36, 47810),
    "sata-ssd-healthy.json": ("passed", "healthy", "ATA", "Samsung SSD 870 EVO 500GB",
                              "S6PWNX0T512345A", 31, 6812),
    "nvme-healthy.json": ("passed", "healthy", "NVMe", "Samsung SSD 980 1TB", "S64ANS0T123456K",
                          41, 9120),
    "nvme-critical.json": ("failing", "critical", "NVMe", "KINGSTON SA2000M81000G",
                           "50026B7684ABCDEF", 52, 31870),
    "usb-sat-seagate.json": ("passed", "healthy", "ATA", "ST2000DM008-2FR102", "ZFL1A2B3", 33, 3912),
    "usb-unknown-bridge.json": ("unavailable", "unavailable", "", "", "", None, None),
    "usb-sat-no-passthrough.json": ("standby", "unknown", "ATA", "", "", None, None),
    "sata-hdd-standby.json": ("standby", "unknown", "ATA", "", "", None, None),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_reads_as_expected(name):
    d = reading(load(name))
    assert (d.overall, d.verdict, d.protocol, d.model, d.serial, d.temperature_c,
            d.power_on_hours) == FIXTURES[name]
    json.dumps(d.to_json())


def test_exit_status_is_a_bitmask_and_never_hides_the_json():
    assert decode_exit_status(216) == ("smart_failing", "prefail_threshold", "error_log",
                                       "self_test_log")
    assert decode_exit_status(0) == () and decode_exit_status(-1) == ()
    assert decode_exit_status(None) == () and decode_exit_status(300) == ()
    failing = reading(load("sata-hdd-failing.json"), code=216)
    assert (failing.exit_status, failing.firmware, failing.capacity_bytes) == (
        216, "CC27", 3000592982016)
    assert reading(load("sata-hdd-failing.json")).exit_status == 216  # from the JSON


def test_argv():
    assert smartctl_argv("/dev/sda") == ["smartctl", "--json=c", "-a", "-n", "standby",
                                         "/dev/sda"]
    assert smartctl_argv("/dev/sdb", "sat,12")[-3:] == ["-d", "sat,12", "/dev/sdb"]


def test_failing_disk_reasons_in_order():
    assert reading(load("sata-hdd-failing.json")).reasons == (
        "SMART overall-health self-assessment failed",
        "attribute 5 Reallocated_Sector_Ct is below its failure threshold",
        "extended offline self-test failed: Completed: read failure at LBA 2071451712",
        "1976 reallocated sectors", "24 pending sectors", "24 offline uncorrectable sectors",
        "58 reported uncorrectable errors", "1 command timeout")


def test_counters_use_raw_values_but_not_the_packed_temperature():
    d = reading(load("sata-hdd-failing.json"))
    assert d.counters["command_timeouts"] == 1      # 188 raw 4295032833 is "1 1 1"
    assert d.counters["load_cycles"] == 97540
    assert d.temperature_c == 38                    # 194 raw is 210453725222 (packed)
    assert "temperature" not in json.dumps(d.counters)


def test_a_short_test_does_not_clear_an_extended_failure_but_a_newer_extended_does():
    doc = load("sata-hdd-selftest-failed.json")
    d = reading(doc)
    assert (d.self_test.kind, d.self_test.passed, d.self_test.failing_lba) == (
        "Extended offline", False, 4207216841)
    assert d.reasons[0] == ("extended offline self-test failed: Completed: read failure "
                            "at LBA 4207216841")
    table = doc["ata_smart_self_test_log"]["standard"]["table"]
    table.insert(0, {"type": {"value": 2, "string": "Extended offline"},
                     "status": {"value": 0, "string": "Completed without error", "passed": True},
                     "lifetime_hours": 47830})
    later = reading(doc)
    assert (later.self_test.passed, later.verdict, later.reasons) == (
        True, "warning", ("3 pending sectors",))


def test_a_running_self_test_has_no_verdict():
    doc = load("sata-hdd-healthy.json")
    doc["ata_smart_self_test_log"]["standard"]["table"].insert(0, {
        "type": {"value": 2, "string": "Extended offline"},
        "status": {"value": 249, "string": "Self-test routine in progress",
                   "remaining_percent": 90}, "lifetime_hours": 14880})
    d = reading(doc)
    assert (d.self_test.status, d.self_test.passed, d.verdict) == (
        "Self-test routine in progress", None, "healthy")


@pytest.mark.parametrize(("fixture", "ident", "value", "reason"), [
    ("sata-hdd-healthy.json", 5, 8, "8 reallocated sectors"),
    ("sata-hdd-healthy.json", 197, 1, "1 pending sector"),
    ("sata-hdd-healthy.json", 198, 2, "2 offline uncorrectable sectors"),
    ("usb-sat-seagate.json", 187, 3, "3 reported uncorrectable errors"),
    ("usb-sat-seagate.json", 188, 5, "5 command timeouts"),
    ("usb-sat-seagate.json", 184, 1, "1 end-to-end error"),
    ("sata-hdd-healthy.json", 10, 1, "1 spin-up retry"),
    ("sata-hdd-healthy.json", 196, 4, "4 reallocation events"),
    ("sata-ssd-healthy.json", 199, 12,
     "12 UDMA CRC errors: check the SATA cable or USB bridge (a link fault, not the disk)"),
])
def test_counters_above_zero_are_warnings(fixture, ident, value, reason):
    d = reading(set_raw(load(fixture), ident, value))
    assert (d.verdict, d.reasons) == ("warning", (reason,))


def test_counters_that_only_describe_use_never_warn():
    d = reading(set_raw(load("sata-hdd-healthy.json"), 193, 600_000))
    assert (d.counters["load_cycles"], d.verdict) == (600_000, "healthy")
    assert reading(load("nvme-healthy.json")).counters["unsafe_shutdowns"] == 7


def test_nvme_critical_warning_bits_and_media_errors():
    d = reading(load("nvme-critical.json"))
    assert d.nvme.critical_warnings == ("available spare below threshold",
                                        "reliability degraded by media or internal errors")
    assert (d.nvme.available_spare, d.nvme.available_spare_threshold) == (4, 10)
    assert d.counters == {"media_errors": 37, "error_log_entries": 412, "unsafe_shutdowns": 212}
    assert d.reasons[-2:] == ("rated endurance used up (101 % used)", "37 NVMe media errors")
    doc = load("nvme-healthy.json")
    doc["nvme_smart_health_information_log"]["critical_warning"] = 2  # temperature bit only
    assert reading(doc).reasons == ("NVMe critical warning: temperature outside its limits",)


def test_an_attribute_below_threshold_in_the_past_is_a_warning():
    doc = load("sata-ssd-healthy.json")
    doc["ata_smart_attributes"]["table"][0]["when_failed"] = "past"
    assert reading(doc).reasons == (
        "attribute 5 Reallocated_Sector_Ct was below its failure threshold in the past",)


def test_a_sas_disk_reports_grown_defects():
    doc = {"json_format_version": [1, 0],
           "smartctl": {"version": [7, 3], "exit_status": 0},
           "device": {"name": "/dev/sdd", "info_name": "/dev/sdd", "type": "scsi",
                      "protocol": "SCSI"},
           "scsi_vendor": "SEAGATE", "scsi_product": "ST4000NM0023", "scsi_revision": "0004",
           "serial_number": "Z1Z0ABCD", "smart_support": {"available": True, "enabled": True},
           "smart_status": {"passed": True}, "temperature": {"current": 30},
           "scsi_grown_defect_list": 12, "power_on_time": {"hours": 40123}}
    d = reading(doc)
    assert (d.model, d.firmware, d.verdict, d.reasons) == (
        "SEAGATE ST4000NM0023", "0004", "warning", ("12 grown defects",))


def test_unavailable_and_standby_are_said_honestly():
    usb = reading(load("usb-unknown-bridge.json"))
    assert (usb.verdict, usb.reasons, usb.exit_flags) == (
        "unavailable", ("/dev/sdb: Unknown USB bridge [0x152d:0x0578 (0x214)]",),
        ("command_line",))
    asleep = reading(load("sata-hdd-standby.json"))
    assert (asleep.power_mode, asleep.reasons) == (
        "STANDBY", ("disk in STANDBY; SMART not read so as not to wake it",))


def test_attributes_without_a_health_status_are_not_called_healthy():
    doc = load("usb-sat-seagate.json")
    del doc["smart_status"]
    d = reading(doc)
    assert (d.overall, d.verdict, d.reasons) == (
        "unknown", "unknown", ("SMART overall status not reported",))
    assert reading(set_raw(doc, 197, 2)).verdict == "warning"


def test_temperature_levels_with_hysteresis():
    assert [temperature_level(t, False) for t in (None, 54, 55, 59, 60)] == [
        "", "normal", "warning", "warning", "critical"]
    assert temperature_level(53, False, "warning") == "warning"   # not yet 3 C below
    assert temperature_level(52, False, "warning") == "normal"
    assert temperature_level(58, False, "critical") == "critical"
    assert temperature_level(57, False, "critical") == "warning"
    assert temperature_level(None, False, "warning") == "warning"
    assert [temperature_level(t, True) for t in (65, 70, 80)] == ["normal", "warning", "critical"]


# ----------------------------------------------------------------------------- bad output
@pytest.mark.parametrize(("code", "stdout", "message"), [
    (0, "", "smartctl printed nothing (exit 0)"),
    (-1, "", "smartctl timed out"),
    (127, "", "smartctl is not installed"),
    (2, "{", "smartctl output is not smartctl JSON, perhaps cut short (1 bytes, exit 2)"),
    (0, '{"smartctl": 5}', "smartctl output is not smartctl JSON, perhaps cut short (15 bytes, exit 0)"),
    (0, "[" * 100_000, "smartctl output is not smartctl JSON, perhaps cut short (100000 bytes, exit 0)"),
])
def test_output_that_is_not_smartctl_json_is_unknown(code, stdout, message):
    d = parse_smartctl(code, stdout, "/dev/sda")
    assert (d.overall, d.verdict, d.message, d.reasons) == ("unknown", "unknown", message, (message,))


def test_every_truncation_of_a_reading_is_unknown_never_an_exception():
    text = compact(load("sata-hdd-healthy.json"))
    for end in range(len(text)):
        d = parse_smartctl(0, text[:end], "/dev/sda")
        assert (d.overall, d.verdict) == ("unknown", "unknown")
    assert parse_smartctl(0, text, "/dev/sda").verdict == "healthy"


def _mutate(node, rng: random.Random):
    """Replaces one value somewhere in the document with a value of another type."""
    junk = [None, True, -1, 2**70, 3.5, "", "x", [], {}, [1, "a"], {"value": "x"}]
    while True:
        if isinstance(node, dict) and node:
            key = rng.choice(list(node))
        elif isinstance(node, list) and node:
            key = rng.randrange(len(node))
        else:
            return
        if rng.random() < 0.3 or not isinstance(node[key], (dict, list)):
            node[key] = rng.choice(junk)
            return
        node = node[key]


def test_documents_with_wrong_types_anywhere_never_raise():
    rng = random.Random(4)
    docs = [load(p.name) for p in sorted(SMARTCTL.glob("*.json"))]
    for _ in range(1500):
        doc = copy.deepcopy(rng.choice(docs))
        for _ in range(rng.randint(1, 4)):
            _mutate(doc, rng)
        d = parse_smartctl(rng.choice([None, 0, 2, 216, -1]), json.dumps(doc), "/dev/sda")
        assert d.overall in OVERALLS and d.verdict in VERDICTS
        json.dumps(d.to_json())


# ----------------------------------------------------------------------------- reader
class FakeSmartctl:
    """Answers smartctl argv by -d type with fixture files (None = a timeout)."""

    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers = answers
        self.calls: list[list[str]] = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        dtype = argv[argv.index("-d") + 1] if "-d" in argv else ""
        name = self.answers[dtype]
        if name is None:
            return -1, ""
        doc = load(name)
        return doc["smartctl"]["exit_status"], compact(doc)

    @property
    def types(self) -> list[str]:
        return [c[c.index("-d") + 1] if "-d" in c else "" for c in self.calls]


def test_a_directly_attached_disk_takes_one_run():
    run = FakeSmartctl({"": "sata-hdd-healthy.json"})
    d = SmartReader(run).read("/dev/sda")
    assert (d.verdict, d.device_type, run.types) == ("healthy", "", [""])
    assert d.attempts == ("auto: exit 0, passed",)
    assert run.calls[0] == ["smartctl", "--json=c", "-a", "-n", "standby", "/dev/sda"]


def test_an_unknown_usb_bridge_falls_back_to_sat_and_remembers_it():
    run = FakeSmartctl({"": "usb-unknown-bridge.json", "sat": "usb-sat-seagate.json"})
    reader = SmartReader(run)
    d = reader.read("/dev/sdb")
    assert (d.verdict, d.device_type, d.serial, run.types) == ("healthy", "sat", "ZFL1A2B3",
                                                               ["", "sat"])
    assert d.attempts == ("auto: exit 1, /dev/sdb: Unknown USB bridge [0x152d:0x0578 (0x214)]",
                          "sat: exit 0, passed")
    assert reader.read("/dev/sdb").device_type == "sat"
    assert run.types == ["", "sat", "sat"]  # second read goes straight to -d sat
    reader.forget("/dev/sdb")
    reader.read("/dev/sdb")
    assert run.types[3:] == ["", "sat"]


def test_sleep_through_a_bridge_is_not_taken_for_a_working_type():
    run = FakeSmartctl({"": "usb-unknown-bridge.json", "sat": "usb-sat-no-passthrough.json",
                        "sat,12": "usb-sat-seagate.json"})
    d = SmartReader(run).read("/dev/sdb")
    assert (d.verdict, d.device_type, run.types) == ("healthy", "sat,12", ["", "sat", "sat,12"])


def test_a_bridge_that_passes_no_smart_is_unavailable_with_smartctls_words():
    run = FakeSmartctl({"": "usb-unknown-bridge.json", "sat": "usb-sat-no-passthrough.json",
                        "sat,12": "usb-sat-no-passthrough.json"})
    d = SmartReader(run).read("/dev/sdb")
    assert (d.overall, d.verdict, d.device_type) == ("unavailable", "unavailable", "")
    assert d.message == ("/dev/sdb: Unknown USB bridge [0x152d:0x0578 (0x214)]; "
                         "also tried -d sat and -d sat,12")
    assert d.reasons == (d.message,)
    assert len(d.attempts) == 3 and d.attempts[1] == "sat: exit 2, Device is in SLEEP mode, exit(2)"


def test_a_remembered_type_that_stops_working_is_probed_again():
    run = FakeSmartctl({"": "usb-unknown-bridge.json", "sat": "usb-sat-seagate.json"})
    reader = SmartReader(run)
    reader.read("/dev/sdb")
    run.answers["sat"] = "usb-sat-no-passthrough.json"
    run.answers["sat,12"] = "usb-sat-seagate.json"
    assert reader.read("/dev/sdb").device_type == "sat,12"
    assert run.types == ["", "sat", "sat", "", "sat", "sat,12"]


@pytest.mark.parametrize(("answers", "overall"), [
    ({"": "sata-hdd-standby.json"}, "standby"),      # asleep: leave it asleep
    ({"": "nvme-critical.json"}, "failing"),
    ({"": None}, "unknown"),                         # timed out: no more runs
])
def test_no_fallback_when_smartctl_reached_the_disk_or_hung(answers, overall):
    run = FakeSmartctl(answers)
    assert SmartReader(run).read("/dev/sda").overall == overall
    assert run.types == [""]


def test_an_explicit_type_is_used_alone():
    run = FakeSmartctl({"sat": "usb-sat-no-passthrough.json"})
    d = SmartReader(run).read("/dev/sdb", device_type="sat")
    assert (d.overall, d.device_type, run.types) == ("standby", "sat", ["sat"])


# ----------------------------------------------------------------------------- real smartctl
REAL = sorted((SMARTCTL / "real").glob("*.json"))


@pytest.mark.parametrize("path", REAL, ids=[p.name for p in REAL])
def test_real_captures_read_as_unavailable_or_asleep(path):
    d = parse_smartctl(None, path.read_text(), "/dev/x")
    assert d.verdict in ("unavailable", "unknown") and d.message
    assert d.overall == ("standby" if "SLEEP" in path.read_text() else "unavailable")


def test_real_smartctl_on_devices_without_smart(tmp_path):
    if shutil.which("smartctl") is None:
        pytest.skip("smartctl is not installed (Debian package smartmontools)")
    plain_file = tmp_path / "disk.img"
    plain_file.write_bytes(b"\0" * 4096)
    reader = SmartReader()
    for device in ("/dev/null", str(plain_file)):
        d = reader.read(device)
        assert (d.overall, d.verdict) == ("unavailable", "unavailable"), d
        assert d.message.startswith(f"{device}: Unable to detect device type; also tried")
        assert [a.split(":")[0] for a in d.attempts] == ["auto", "sat", "sat,12"]
        json.dumps(d.to_json())
