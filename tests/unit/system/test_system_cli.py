"""`nvr system apply` (the boot step) and `nvr system show`, in the sandbox."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.system import transaction
from appliance.system.cli import register
from appliance.system.settings import SystemSettings, save_settings
from appliance.system.transaction import Transaction


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="nvr")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return args.func(args)


def common(tmp_path) -> list[str]:
    return ["--config-dir", str(tmp_path / "config"), "--secrets", str(tmp_path / "cams"),
            "--adoption-secrets", str(tmp_path / "adopt"), "--lan-interface", "end0",
            "--default-hostname", "vigil-7"]


def logged(sandbox) -> list[list[str]]:
    path = sandbox / "commands.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_boot_apply_with_no_settings_yet(tmp_path, capsys):
    sandbox = tmp_path / "sandbox"
    assert run("system", "apply", *common(tmp_path), "--sandbox", str(sandbox)) == 0
    assert (sandbox / "run/vigil/hostname").read_text() == "vigil-7\n"
    assert "Name=end0" in (sandbox / "run/systemd/network/10-vigil-lan.network").read_text()
    assert logged(sandbox) == [["hostname", "--", "vigil-7"]]
    assert "applied: vigil-7, UTC, DHCP" in capsys.readouterr().out


def test_boot_apply_of_stored_settings(tmp_path, capsys):
    save_settings(tmp_path / "config" / "system.json", SystemSettings("garage").updated({
        "time": {"ntp": False, "timezone": "Europe/Berlin"},
        "network": {"mode": "static", "address": "192.168.1.20/24"}}))
    sandbox = tmp_path / "sandbox"
    assert run("system", "apply", *common(tmp_path), "--sandbox", str(sandbox), "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["problems"] == [] and out["settings"]["hostname"] == "garage"
    assert logged(sandbox) == [["hostname", "--", "garage"],
                               ["systemctl", "mask", "--runtime", "--now",
                                "systemd-timesyncd.service"]]   # no reload: not running yet
    assert "Address=192.168.1.20/24" in (sandbox / "run/systemd/network/"
                                         "10-vigil-lan.network").read_text()


def test_a_damaged_file_still_makes_the_box_reachable(tmp_path, capsys):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "system.json").write_text('{"hostname": "a;reboot"}')
    sandbox = tmp_path / "sandbox"
    assert run("system", "apply", *common(tmp_path), "--sandbox", str(sandbox)) == 1
    assert "damaged" in capsys.readouterr().err
    assert "DHCP=ipv4" in (sandbox / "run/systemd/network/10-vigil-lan.network").read_text()
    assert (sandbox / "run/vigil/hostname").read_text() == "vigil-7\n"


def test_boot_finishes_an_interrupted_restore_first(tmp_path, capsys, monkeypatch):
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    tx = Transaction(config_dir / ".restore-journal.json")
    tx.put(config_dir, "system.json", SystemSettings("restored").dumps())
    with monkeypatch.context() as patch:
        patch.setattr(transaction, "_finish", lambda *a: None)  # the power went after the journal
        tx.commit()
    sandbox = tmp_path / "sandbox"
    assert run("system", "apply", *common(tmp_path), "--sandbox", str(sandbox)) == 0
    assert "interrupted" in capsys.readouterr().out
    assert (sandbox / "run/vigil/hostname").read_text() == "restored\n"


def test_show(tmp_path, capsys):
    assert run("system", "show", *common(tmp_path), "--json") == 0
    assert json.loads(capsys.readouterr().out)["hostname"] == "vigil-7"
    assert run("system", "show", *common(tmp_path)) == 0
    assert "network DHCP" in capsys.readouterr().out


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None
                    or shutil.which("hostname") is None,
                    reason="needs root, util-linux's unshare and the hostname tool")
@pytest.mark.timeout(60)
def test_boot_apply_on_the_host_backend_runs_the_real_tools(tmp_path):
    """The host backend with the real command runner, in a private UTS namespace (the
    machine's own name is not touched): the boot step really sets the kernel's host name."""
    save_settings(tmp_path / "config" / "system.json", SystemSettings("vigil-uts-test"))
    script = ("import argparse, json, socket, sys\n"
              "from appliance.system.cli import register\n"
              "p = argparse.ArgumentParser(); register(p.add_subparsers(dest='c'))\n"
              "a = p.parse_args(sys.argv[1:]); code = a.func(a)\n"
              "print(json.dumps({'code': code, 'name': socket.gethostname()}))\n")
    out = subprocess.run(["unshare", "--uts", sys.executable, "-c", script, "system", "apply",
                          *common(tmp_path), "--root", str(tmp_path / "root"), "--json"],
                         capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    result, report = json.loads(lines[-1]), json.loads("\n".join(lines[:-1]))
    assert report["ran"] == [["hostname", "--", "vigil-uts-test"]] and report["problems"] == []
    assert result == {"code": 0, "name": "vigil-uts-test"}
    assert (tmp_path / "root/run/vigil/hostname").read_text() == "vigil-uts-test\n"
    assert socket.gethostname() != "vigil-uts-test"
