"""`nvr hwd` on the simulated board: the PoE manager powers the simulated cameras' ports,
`nvr health` reports the ports from hwd's snapshot, its control socket answers commands
(a PoE power cycle, a disk list); hwd stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.core.control import ControlClient
from appliance.core.errors import InvalidConfig
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.timeout(60)
def test_hwd_runs_poe_and_health_shows_the_ports(tmp_path):
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "hwd", "--board", "sim",
                             "--state", str(state), "--volumes", str(tmp_path / "volumes.json"),
                             "--smart-history", str(tmp_path / "smart.json"),
                             "--control", str(tmp_path / "run" / "hwd.sock")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def ports() -> dict:
            try:
                return {p["label"]: p for p in json.loads((state / "poe.json").read_text())["ports"]}
            except (OSError, ValueError):
                return {}
        wait_until(lambda: ports().get("Port 1", {}).get("state") == "powered"
                   or proc.poll() is not None, 30, "Port 1 powered in hwd's snapshot", step=0.2)
        first = ports()
        assert first["Port 1"]["state"] == "powered" and first["Port 1"]["class"] == 3
        assert first["Port 3"]["state"] == "searching"
        out = subprocess.run([sys.executable, "-m", "appliance.cli", "health", "--data",
                              str(tmp_path / "data"), "--state", str(state), "--json"],
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        poe = json.loads(out.stdout)["devices"]["poe"]
        assert {p["label"]: p["state"] for p in poe["ports"]}["Port 2"] == "powered"
        hwd = ControlClient(tmp_path / "run" / "hwd.sock")
        wait_until(lambda: (tmp_path / "run" / "hwd.sock").exists(), 10, "the control socket")
        assert hwd.call("poe.power_cycle", port="Port 2", reason="test")["port_label"] == "Port 2"
        wait_until(lambda: ports().get("Port 2", {}).get("state") != "powered", 30,
                   "Port 2 switched off", step=0.1)
        wait_until(lambda: ports().get("Port 2", {}).get("state") == "powered", 30,
                   "Port 2 powered again", step=0.2)
        with pytest.raises(InvalidConfig):
            hwd.call("poe.power_cycle", port="Port 99", reason="no such port")
        assert isinstance(hwd.call("disks.list")["disks"], list)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert not (tmp_path / "run" / "hwd.sock").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
