"""The two OS backends write the same files; the host one runs exactly the commands that
the change needs (argument lists, through the runner it is given: a recorder here), the
sandbox one only records them. Also: which commands a change needs, at boot and later,
and the manual time."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from appliance.core.commands import CommandResult
from appliance.core.errors import InvalidConfig
from appliance.system.apply import (TIMESYNCD, apply_settings, commands_for, parse_manual_time,
                                    set_time_command)
from appliance.system.backends import HostSystem, SandboxSystem
from appliance.system.render import LOCALTIME_LINK, TIMESYNCD_FILE
from appliance.system.settings import SystemSettings


class RecordingRunner:
    """Stands in for the command runner (not what is tested here): records argv and
    answers with the exit code the test chose per program."""

    def __init__(self, fail: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[list[str], float]] = []
        self.fail = fail or {}

    def __call__(self, argv, *, timeout, input=None):
        self.calls.append((list(argv), timeout))
        if argv[0] in self.fail:
            return CommandResult(1, "", self.fail[argv[0]])
        return CommandResult(0, "", "")


def tree(root: Path) -> dict[str, str]:
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file() and rel != "commands.log":
            found[rel] = path.read_text()
    return found


BERLIN = SystemSettings().updated({"hostname": "garage", "time": {
    "timezone": "Europe/Berlin", "ntp_servers": ["ntp.example.org"]}})


def test_host_and_sandbox_write_the_same_files(tmp_path):
    runner = RecordingRunner()
    host = HostSystem(tmp_path / "host", runner=runner)
    sandbox = SandboxSystem(tmp_path / "sandbox")
    for system in (host, sandbox):
        apply_settings(system, BERLIN, "eth0", previous=SystemSettings())
    assert tree(tmp_path / "host") == tree(tmp_path / "sandbox")
    assert set(tree(tmp_path / "host")) == {
        "run/systemd/network/10-vigil-lan.network", "run/systemd/timesyncd.conf.d/50-vigil.conf",
        "run/vigil/hostname", "run/vigil/timezone", "run/vigil/localtime"}
    assert os.readlink(tmp_path / "host" / LOCALTIME_LINK) == "/usr/share/zoneinfo/Europe/Berlin"
    # the host ran them, with a time limit; the sandbox only wrote them down
    assert [argv for argv, _ in runner.calls] == sandbox.commands
    assert all(timeout <= 10 for _, timeout in runner.calls)
    logged = [json.loads(line) for line in
              (tmp_path / "sandbox" / "commands.log").read_text().splitlines()]
    assert logged == sandbox.commands
    assert not (tmp_path / "host" / "commands.log").exists()


def test_a_change_replaces_files_and_links_and_removes_what_is_gone(tmp_path):
    system = SandboxSystem(tmp_path)
    apply_settings(system, BERLIN, "eth0")
    tokyo = BERLIN.updated({"time": {"timezone": "Asia/Tokyo", "ntp": False}})
    apply_settings(system, tokyo, "eth0", previous=BERLIN)
    assert os.readlink(tmp_path / LOCALTIME_LINK) == "/usr/share/zoneinfo/Asia/Tokyo"
    assert not (tmp_path / TIMESYNCD_FILE).exists()       # NTP off: no drop-in
    assert (tmp_path / "run/vigil/timezone").read_text() == "Asia/Tokyo\n"
    assert not [p for p in tmp_path.rglob(".*.tmp")]


def test_failing_commands_are_reported_with_the_tools_words(tmp_path):
    runner = RecordingRunner(fail={"hostnamectl": "Could not set hostname: Access denied"})
    report = apply_settings(HostSystem(tmp_path, runner=runner), BERLIN, "eth0",
                            previous=SystemSettings())
    assert report.problems == ["`hostnamectl --transient hostname` failed: Could not set "
                               "hostname: Access denied"]
    assert (tmp_path / "run/vigil/hostname").read_text() == "garage\n"  # the files are there


def test_commands_for_each_change():
    base = SystemSettings()
    assert commands_for(base, base, boot=False) == []
    assert commands_for(base.updated({"hostname": "garage"}), base, boot=False) == [
        ["hostnamectl", "--transient", "hostname", "garage"]]
    assert commands_for(base.updated({"time": {"timezone": "Asia/Tokyo"}}), base,
                        boot=False) == []  # the link is all
    off = base.updated({"time": {"ntp": False}})
    assert commands_for(off, base, boot=False) == [
        ["systemctl", "mask", "--runtime", "--now", TIMESYNCD]]
    assert commands_for(base, off, boot=False) == [
        ["systemctl", "unmask", "--runtime", TIMESYNCD], ["systemctl", "restart", TIMESYNCD]]
    servers = base.updated({"time": {"ntp_servers": ["192.0.2.1"]}})
    assert commands_for(servers, base, boot=False) == [
        ["systemctl", "unmask", "--runtime", TIMESYNCD], ["systemctl", "restart", TIMESYNCD],
        ["networkctl", "reload"]]  # UseNTP=no went into the .network file
    static = base.updated({"network": {"mode": "static", "address": "192.168.1.20/24"}})
    assert commands_for(static, base, boot=False) == [["networkctl", "reload"]]


def test_at_boot_the_daemons_read_the_files_themselves():
    """No D-Bus yet: the name through sethostname(2), nothing reloaded."""
    assert commands_for(SystemSettings(), None, boot=True) == [["hostname", "--", "vigil"]]
    off = SystemSettings().updated({"time": {"ntp": False}, "network": {
        "mode": "static", "address": "192.168.1.20/24"}})
    assert commands_for(off, SystemSettings(), boot=True) == [
        ["hostname", "--", "vigil"], ["systemctl", "mask", "--runtime", "--now", TIMESYNCD]]


def test_manual_time():
    when = parse_manual_time("2026-11-23T14:05", "Europe/Berlin")        # box-local (CET)
    assert when == datetime(2026, 11, 23, 13, 5, tzinfo=timezone.utc)
    assert set_time_command(when) == ["timedatectl", "set-time", "2026-11-23 13:05:00 UTC"]
    assert parse_manual_time("2026-07-01T12:00:00Z", "Asia/Tokyo").hour == 12
    assert parse_manual_time("2026-07-01T12:00:00+02:00", "UTC").hour == 10
    for bad in ("yesterday", "2026-13-01T00:00", "2023-12-31T23:59", "2100-01-01T00:00",
                "$(touch /tmp/canary)", "2026-11-23T14:05\n", "", None, 1790000000,
                ["2026-11-23T14:05"], "2026-11-23T14:05:00+02:00; reboot", "x" * 41):
        with pytest.raises(InvalidConfig, match="time"):
            parse_manual_time(bad, "UTC")
