"""`nvr run` (what `make run` starts): simulated cameras + recorder + web API; Ctrl-C
stops all."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest

from appliance.recorder.index import RecordingIndex
from hw.camsim.server import free_port
from tests.integration.conftest import CACHE, ROOT
from tests.integration.web_session import ApiClient


@pytest.mark.timeout(300)
def test_nvr_run_records_the_simulated_cameras_and_stops_cleanly_on_ctrl_c(tmp_path):
    var = tmp_path / "var"
    var.mkdir()
    CACHE.mkdir(parents=True, exist_ok=True)
    (var / "cache").symlink_to(CACHE)  # clips are encoded once per checkout
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "run", "--var", str(var),
                             "--port", str(free_port()), "--web-port", str(free_port())],
                            cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 240
    try:
        for line in proc.stdout:
            lines.append(line)
            recording = [ln for ln in lines[-5:] if " recording " in ln]
            powered = any("Port 1 powered" in ln for ln in lines[-5:])
            if (len(recording) >= 2 and powered) or time.monotonic() > deadline:
                break
        [web] = [ln.split("web API: ")[1].strip() for ln in lines if "web API: " in ln]
        assert any("no admin yet (there is no default password)" in ln for ln in lines)
        base = web.split("/api/v1")[0]
        with pytest.raises(urllib.error.HTTPError) as err:  # nothing before the setup
            urllib.request.urlopen(web, timeout=10)
        assert err.value.code == 503
        client = ApiClient(base).login()
        status, timeline = client.json("GET", "/api/v1/cameras/cam1/timeline")
        assert status == 200 and timeline["camera"] == "cam1"
        children = psutil.Process(proc.pid).children(recursive=True)
        assert any("rtsp_server.py" in " ".join(c.cmdline()) for c in children)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines) + rest
    assert proc.returncode == 0, output[-3000:]
    assert "stopped cleanly" in output
    assert "cam1" in output and "cam2" in output
    assert "Port 1 powered 6.5 W" in output  # the simulated PoE board powers camera 1's port
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    index = RecordingIndex(var / "data", readonly=True)
    for cam in ("cam1", "cam2"):
        assert index.segments(cam), f"{cam} has a segment after Ctrl-C"
        assert [g.cause for g in index.gaps(cam)] == ["recorder_stopped"]
    assert index.get_meta("clean_shutdown") == "1"
