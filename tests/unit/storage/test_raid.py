"""md RAID state from our hand-written mdstat, sysfs and mdadm samples (kernel format)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from appliance.storage.raid import (
    STATES, ArrayHealth, Member, RaidMonitor, parse_mdadm_export, parse_mdstat, raid_alerts,
    read_sysfs_array, run_command,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "storage"
MDSTAT = FIXTURES / "mdstat"
SYSFS = FIXTURES / "sysfs"
MDADM = FIXTURES / "mdadm"


def mdstat(name: str) -> dict[str, ArrayHealth]:
    return parse_mdstat((MDSTAT / name).read_text())


def no_mdadm(argv):
    raise AssertionError(f"mdadm must not run: {argv}")


# (fixture, array) -> (state, configured, working, missing slots, sync action, percent,
#                      eta seconds, speed KiB/s, faulty members)
MDSTAT_CASES = {
    ("raid1-clean", "md0"): ("healthy", 2, 2, (), "", None, None, None, ()),
    ("raid1-degraded", "md0"): ("degraded", 2, 1, (1,), "", None, None, None, ()),
    ("raid1-faulty", "md0"): ("degraded", 2, 1, (0,), "", None, None, None, ("sda1",)),
    ("raid1-recovery", "md0"): ("rebuilding", 2, 1, (1,), "recover", 23.4, 7698, 194363, ()),
    ("raid1-resync", "md0"): ("resyncing", 2, 2, (), "resync", 59.9, 5142, 152011, ()),
    ("raid1-check", "md0"): ("checking", 2, 2, (), "check", 60.9, 3780, 201322, ()),
    ("raid1-delayed", "md0"): ("rebuilding", 2, 1, (1,), "recover", 22.1, 36, 203940, ()),
    ("raid1-delayed", "md1"): ("rebuilding", 2, 1, (1,), "recover", None, None, None, ()),
    ("raid1-pending", "md127"): ("resync_pending", 2, 2, (), "", None, None, None, ()),
    ("inactive", "md127"): ("inactive", None, None, (), "", None, None, None, ()),
    ("raid1-spare", "md0"): ("healthy", 2, 2, (), "", None, None, None, ()),
    ("raid0", "md0"): ("healthy", 2, 2, (), "", None, None, None, ()),
    ("mixed", "md3"): ("reshaping", 4, 4, (), "reshape", 27.4, 28908, 98112, ()),
    ("mixed", "md2"): ("rebuilding", 2, 2, (), "recover", 12.6, 4554, 187206, ()),
    ("mixed", "md_d0"): ("healthy", 2, 2, (), "", None, None, None, ()),
}


@pytest.mark.parametrize(("fixture", "name"), sorted(MDSTAT_CASES))
def test_mdstat_fixture_reads_as_expected(fixture, name):
    a = mdstat(fixture)[name]
    got = (a.state, a.configured, a.working, a.missing_slots, a.sync_action,
           a.progress_percent, a.eta_seconds, a.speed_kib_s, a.faulty_members)
    assert got == MDSTAT_CASES[(fixture, name)]
    assert a.source == "mdstat"


def test_mdstat_arrays_in_kernel_order_and_names():
    assert list(mdstat("raid1-delayed")) == ["md1", "md0"]
    assert list(mdstat("mixed")) == ["md3", "md2", "md_d0"]  # no "unused devices" line


def test_empty_and_array_less_mdstat_mean_no_arrays():
    assert mdstat("empty") == {}
    assert mdstat("no-arrays") == {}


def test_member_flags_and_descriptor_numbers():
    spare = mdstat("raid1-spare")["md0"]
    assert [(m.device, m.number, m.flags) for m in spare.members] == [
        ("sdc1", 2, ("spare",)), ("sdb1", 1, ()), ("sda1", 0, ())]
    mixed = mdstat("mixed")["md2"]
    assert [(m.device, m.flags) for m in mixed.members] == [
        ("sdd1", ("replacement",)), ("sdc1", ("write_mostly",)), ("sda3", ())]
    assert mixed.detail.startswith("rebuilding a replacement: 12.6 % done")
    # The [2] after sdc1 is md's descriptor number: the disk rebuilds slot 1.
    rebuilding = mdstat("raid1-recovery")["md0"]
    assert [(m.device, m.number, m.slot) for m in rebuilding.members] == [
        ("sdc1", 2, None), ("sda1", 0, None)]


def test_details_name_what_is_wrong():
    assert mdstat("raid1-faulty")["md0"].detail == (
        "raid1 running on 1 of 2 devices, slot 0 missing; no redundancy left; faulty: sda1")
    assert mdstat("raid1-delayed")["md1"].detail == (
        "rebuilding slot 1: delayed until another array on the same disks finishes")
    assert mdstat("raid1-recovery")["md0"].detail == (
        "rebuilding slot 1: 23.4 % done, about 128 min left")
    pending = mdstat("raid1-pending")["md127"]
    assert pending.read_only == "auto-read-only"
    assert "starts syncing on its first write" in pending.detail
    assert mdstat("inactive")["md127"].detail == (
        "assembled from sdb1, sda1 but not running; spare: sdb1, sda1")
    assert mdstat("raid0")["md0"].detail == "raid0 across 2 devices (no redundancy)"


def test_mdstat_that_is_not_mdstat_is_unknown_not_empty():
    arrays = parse_mdstat("<html>502 Bad Gateway</html>\n")
    assert list(arrays) == ["mdstat"]
    assert arrays["mdstat"].state == "unknown"
    assert "does not look like mdstat" in arrays["mdstat"].detail


@pytest.mark.parametrize(("cut_after", "problem"), [
    ("md0 : active raid1 sdc1[2] sda1[0]\n", "has no status line"),
    ("[2/", "has no [n/m] [U_] device count"),
    ("[====>", "progress line of md0 is cut short"),
    ("sdc1[2] sd", "is not name[number](flags)"),
])
def test_truncated_mdstat_gives_unknown_with_the_reason(cut_after, problem):
    text = (MDSTAT / "raid1-recovery").read_text()
    arrays = parse_mdstat(text[:text.index(cut_after) + len(cut_after)])
    assert arrays["md0"].state == "unknown"
    assert problem in arrays["md0"].detail


def test_a_progress_line_cut_after_its_action_still_says_what_runs():
    text = (MDSTAT / "raid1-recovery").read_text()
    a = parse_mdstat(text[:text.index("recovery =") + len("recovery =")])["md0"]
    assert (a.state, a.progress_percent, a.eta_seconds) == ("rebuilding", None, None)


# ----------------------------------------------------------------------------- sysfs
def monitor(sys_case: str | Path, mdstat_fixture: str | None = None, tmp_path: Path | None = None,
            run=no_mdadm, use_mdadm: bool = False) -> RaidMonitor:
    proc = Path("/nonexistent-proc")
    if mdstat_fixture is not None:
        proc = tmp_path / "proc"
        proc.mkdir()
        shutil.copy(MDSTAT / mdstat_fixture, proc / "mdstat")
    sys_root = sys_case if isinstance(sys_case, Path) else SYSFS / sys_case
    return RaidMonitor(proc_root=proc, sys_root=sys_root, run=run, use_mdadm=use_mdadm)


SYSFS_CASES = {
    # case: (array, state, configured, working, missing, action, percent, eta, members)
    "raid1-clean": ("md0", "healthy", 2, 2, (), "", None, None,
                    [("sda1", 0, ("in_sync",)), ("sdb1", 1, ("in_sync",))]),
    "raid1-recovery": ("md0", "rebuilding", 2, 1, (1,), "recover", 23.4, 7698,
                       [("sda1", 0, ("in_sync",)), ("sdc1", 1, ("rebuilding",))]),
    "raid1-faulty": ("md0", "degraded", 2, 1, (0,), "", None, None,
                     [("sdb1", 1, ("in_sync",)), ("sda1", None, ("faulty", "write_error"))]),
    "raid1-check": ("md0", "checking", 2, 2, (), "check", 61.0, 3784,
                    [("sda1", 0, ("in_sync",)), ("sdb1", 1, ("in_sync",))]),
    "raid1-pending": ("md127", "resync_pending", 2, 2, (), "", None, None,
                      [("sda1", 0, ("in_sync",)), ("sdb1", 1, ("in_sync",))]),
    "raid0": ("md0", "healthy", 2, 2, (), "", None, None,
              [("sda1", 0, ("in_sync",)), ("sdb1", 1, ("in_sync",))]),
    "inactive": ("md127", "inactive", 2, None, (), "", None, None,
                 [("sda1", None, ("spare",)), ("sdb1", None, ("spare",))]),
}


@pytest.mark.parametrize("case", sorted(SYSFS_CASES))
def test_sysfs_fixture_reads_as_expected(case):
    name, state, configured, working, missing, action, percent, eta, members = SYSFS_CASES[case]
    arrays = monitor(case).read()
    assert list(arrays) == [name]  # md1 ("clear", no members) and sda are not arrays
    a = arrays[name]
    assert (a.state, a.configured, a.working, a.missing_slots, a.sync_action,
            a.progress_percent, a.eta_seconds) == (state, configured, working, missing,
                                                   action, percent, eta)
    assert [(m.device, m.slot, m.flags) for m in a.members] == members
    assert a.source == "sysfs"
    assert a.uuid == "3b1c5a2e:7d0f4e91:a6c2b8d4:19e0f7c3"  # mdadm's form of sysfs's UUID


def test_sysfs_member_errors_and_single_array_reader():
    a = read_sysfs_array(SYSFS / "raid1-faulty" / "block" / "md0" / "md")
    assert {m.device: m.errors for m in a.members} == {"sda1": 13, "sdb1": 0}
    assert read_sysfs_array(SYSFS / "raid1-clean" / "block" / "md1" / "md") is None


def test_sysfs_wins_over_mdstat(tmp_path):
    # mdstat still shows the old picture; sysfs already has the failure.
    a = monitor("raid1-faulty", "raid1-clean", tmp_path).read()["md0"]
    assert (a.state, a.source, a.faulty_members) == ("degraded", "sysfs", ("sda1",))
    assert {m.device: m.number for m in a.members} == {"sdb1": 1, "sda1": 0}  # from mdstat


def test_mdstat_fills_in_when_sysfs_is_unreadable(tmp_path):
    sys_root = tmp_path / "sys"
    shutil.copytree(SYSFS / "raid1-recovery", sys_root)
    (sys_root / "block" / "md0" / "md" / "sync_completed").write_text("garbage\n")
    a = monitor(sys_root, "raid1-recovery", tmp_path).read()["md0"]
    assert (a.state, a.source, a.progress_percent) == ("rebuilding", "mdstat", 23.4)
    assert a.notes == ("sysfs sync_completed of md0 is 'garbage'",)


def test_both_sources_bad_gives_unknown(tmp_path):
    sys_root = tmp_path / "sys"
    shutil.copytree(SYSFS / "raid1-clean", sys_root)
    (sys_root / "block" / "md0" / "md" / "array_state").write_text("exploded\n")
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "mdstat").write_text("Personalities : [raid1] \nmd0 : active raid1 sda1[0]\n")
    a = RaidMonitor(proc_root=proc, sys_root=sys_root, use_mdadm=False).read()["md0"]
    assert (a.state, a.detail) == ("unknown", "sysfs array_state of md0 is 'exploded'")
    assert a.notes == ("mdstat entry for md0 has no status line",)


def test_mdstat_that_is_garbage_is_reported_not_mistaken_for_no_arrays(tmp_path):
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "mdstat").write_text("\x00\x01 not mdstat\n")
    arrays = RaidMonitor(proc_root=proc, sys_root=tmp_path, use_mdadm=False).read()
    assert [(n, a.state) for n, a in arrays.items()] == [("mdstat", "unknown")]


def test_no_md_driver_means_no_arrays(tmp_path):
    assert RaidMonitor(proc_root=tmp_path, sys_root=tmp_path, run=no_mdadm).read() == {}


def test_this_machine_without_md_reads_no_arrays():
    if Path("/proc/mdstat").exists():
        pytest.skip("this machine has the md driver loaded")
    assert RaidMonitor(run=no_mdadm).read() == {}


# ----------------------------------------------------------------------------- mdadm
def test_mdadm_export_identity_and_roles():
    export = parse_mdadm_export((MDADM / "md0-raid1-recovery.export").read_text())
    assert (export.level, export.devices, export.metadata, export.uuid, export.devname,
            export.md_name) == ("raid1", 2, "1.2", "3b1c5a2e:7d0f4e91:a6c2b8d4:19e0f7c3",
                                "data", "vigil:data")
    assert export.roles == (("sda1", 0), ("sdc1", 1))


def test_mdadm_41_mangled_keys_and_missing_dev_lines():
    export = parse_mdadm_export((MDADM / "md127-mdadm41.export").read_text())
    assert export.roles == (("dm-2", None), ("nvme0n1p3", 0), ("sdb1", 1))
    assert export.md_name == "nvr-old:0"


@pytest.mark.parametrize(("text", "problem"), [
    ("", "printed nothing"),
    ("mdadm: cannot open /dev/md0: No such file or directory\n", "is not KEY=VALUE"),
    ("MD_LEVEL=raid1\nMD_DEVICES=two\n", "MD_DEVICES is 'two'"),
    ("MD_LEVEL=raid1\nMD_DEVICE_dev_sda_ROLE=0;rm\n", "role of dev_sda is '0;rm'"),
])
def test_bad_mdadm_export_is_a_problem_not_an_exception(text, problem):
    assert problem in parse_mdadm_export(text).problem


def runner_for(export_fixture: str | None, code: int = 0):
    calls = []

    def run(argv):
        calls.append(list(argv))
        text = (MDADM / export_fixture).read_text() if export_fixture else "garbage"
        return code, text
    run.calls = calls
    return run


def test_mdadm_gives_identity_and_slots_to_mdstat_members(tmp_path):
    run = runner_for("md0-raid1-recovery.export")
    a = monitor("/nonexistent-sys", "raid1-recovery", tmp_path, run, use_mdadm=True).read()["md0"]
    assert run.calls == [["mdadm", "--detail", "--export", "/dev/md0"]]
    assert (a.uuid, a.md_name, a.level) == (
        "3b1c5a2e:7d0f4e91:a6c2b8d4:19e0f7c3", "vigil:data", "raid1")
    assert [(m.device, m.number, m.slot) for m in a.members] == [("sdc1", 2, 1), ("sda1", 0, 0)]


def test_mdadm_spare_role_never_clears_a_faulty_flag(tmp_path):
    run = runner_for("md0-raid1-faulty.export")
    a = monitor("raid1-faulty", None, tmp_path, run, use_mdadm=True).read()["md0"]
    assert [(m.device, m.slot, m.flags) for m in a.members] == [
        ("sdb1", 1, ("in_sync",)), ("sda1", None, ("faulty", "write_error"))]


@pytest.mark.parametrize(("code", "notes"), [
    (127, ()),  # mdadm not installed: identity is optional, nothing to report
    (1, ("mdadm --detail --export /dev/md0 exited 1",)),
    (-1, ("mdadm --detail --export /dev/md0 timed out",)),
    (0, ("mdadm --export line 'garbage' is not KEY=VALUE",)),
])
def test_mdadm_trouble_never_changes_the_state(code, notes):
    a = monitor("raid1-clean", run=runner_for(None, code), use_mdadm=True).read()["md0"]
    assert (a.state, a.notes, a.md_name) == ("healthy", notes, "")


def test_default_runner_reports_missing_binaries_and_timeouts():
    assert run_command(["true"]) == (0, "")
    assert run_command(["/nonexistent/mdadm"])[0] == 127
    assert run_command(["sleep", "5"], timeout=0.05) == (-1, "")


# ----------------------------------------------------------------------------- alerts
def arrays(fixture: str) -> dict[str, ArrayHealth]:
    return mdstat(fixture)


def summary(alerts):
    return [(a.severity, a.source, a.message) for a in alerts]


def test_a_disk_failing_then_rebuilding_then_healthy():
    healthy = arrays("raid1-clean")
    failed = arrays("raid1-faulty")
    assert summary(raid_alerts(healthy, failed)) == [
        ("critical", "raid:md0", "md0 is degraded: raid1 running on 1 of 2 devices, "
                                 "slot 0 missing; no redundancy left; faulty: sda1"),
        ("critical", "raid:md0", "md0: member sda1 failed; replace the disk"),
    ]
    rebuilding = arrays("raid1-recovery")
    assert summary(raid_alerts(arrays("raid1-degraded"), rebuilding)) == [
        ("warning", "raid:md0", "md0 is rebuilding: rebuilding slot 1: 23.4 % done, "
                                "about 128 min left"),
        ("info", "raid:md0", "md0: sdc1 added as member"),
    ]
    back = raid_alerts(rebuilding, arrays("raid1-clean"))
    assert summary(back)[0] == (
        "info", "raid:md0", "md0 is healthy again (raid1, 2 of 2 devices in sync)")
    assert [a.key for a in back] == ["raid:md0:state:healthy", "raid:md0:member:sdb1:added",
                                     "raid:md0:member:sdc1:removed"]


def test_progress_alone_never_alerts():
    first = arrays("raid1-recovery")
    text = (MDSTAT / "raid1-recovery").read_text().replace("23.4%", "61.7%")
    assert raid_alerts(first, parse_mdstat(text)) == []
    assert raid_alerts(arrays("raid1-clean"), arrays("raid1-clean")) == []


def test_disappearing_and_new_arrays():
    assert summary(raid_alerts(arrays("raid1-clean"), {})) == [
        ("critical", "raid:md0", "md0 disappeared (disk removed or array stopped)")]
    assert summary(raid_alerts({}, arrays("inactive"))) == [
        ("critical", "raid:md127", "md127 is inactive: assembled from sdb1, sda1 but not "
                                   "running; spare: sdb1, sda1")]
    assert [a.severity for a in raid_alerts({}, arrays("raid1-clean"))] == ["info"]


def test_an_unreadable_mdstat_does_not_claim_arrays_disappeared():
    alerts = raid_alerts(arrays("raid1-clean"), parse_mdstat("garbage\n"))
    assert summary(alerts) == [("warning", "raid:mdstat", "mdstat cannot be read: /proc/mdstat "
                                "does not look like mdstat (no Personalities line, no arrays)")]


def test_state_severities():
    severities = {
        fixture: [a.severity for a in raid_alerts(arrays("raid1-clean"), arrays(fixture))
                  if ":member:" not in a.key]
        for fixture in ("raid1-resync", "raid1-check", "raid1-pending", "raid1-degraded")}
    assert severities == {"raid1-resync": ["warning"], "raid1-check": ["info"],
                          "raid1-pending": ["critical", "warning"],  # md0 gone, md127 new
                          "raid1-degraded": ["critical"]}


def test_a_check_that_found_mismatches_is_a_warning():
    checking = arrays("raid1-check")
    done = ArrayHealth(**{**checking["md0"].__dict__, "state": "healthy", "sync_action": "",
                          "mismatch_count": 128})
    assert summary(raid_alerts(checking, {"md0": done})) == [
        ("warning", "raid:md0", "md0: check finished with 128 mismatched sectors")]


def test_a_failed_array_and_a_removed_healthy_member():
    before = {"md0": ArrayHealth("md0", "degraded", members=(Member("sdb1", 1, flags=("in_sync",)),
                                                             Member("sda1", None, flags=("faulty",))))}
    after = {"md0": ArrayHealth("md0", "failed", members=())}
    assert summary(raid_alerts(before, after)) == [
        ("critical", "raid:md0", "md0 has failed: "),
        ("info", "raid:md0", "md0: sda1 removed from the array"),
        ("warning", "raid:md0", "md0: sdb1 removed from the array"),
    ]


def test_containers_are_not_alerted_on():
    container = {"md127": ArrayHealth("md127", "inactive", level="container")}
    assert raid_alerts({}, container) == []


def test_invalid_state_is_refused():
    with pytest.raises(ValueError):
        ArrayHealth("md0", "sad")


def test_every_reading_is_json():
    for fixture in sorted(p.name for p in MDSTAT.iterdir()):
        for a in mdstat(fixture).values():
            data = json.loads(json.dumps(a.to_json()))
            assert data["state"] in STATES and data["name"] == a.name
    data = monitor("raid1-faulty").read()["md0"].to_json()
    assert data["members"][1] == {"device": "sda1", "slot": None, "number": None,
                                  "flags": ["faulty", "write_error"], "errors": 13}
    assert data["missing_slots"] == [0] and data["notes"] == []
