"""The recorder enforces the licence: 10 cameras under a 16-channel licence all record;
installing an 8-channel licence stops the last two (their segments closed cleanly,
their gaps saying why) while the first eight go on."""

from __future__ import annotations

import time

import pytest

from appliance.recorder.index import RecordingIndex
from hw.camsim.server import SimCamera
from tests.integration.conftest import ROOT, video_packets
from tests.integration.nvr_cli import nvr_ok
from tests.integration.recorder_process import RecorderProcess

DEV_KEY = ROOT / "keys" / "dev" / "licence-vendor-DEV-ONLY.pem"


def install(tmp_path, channels: int, installed) -> None:
    issued = tmp_path / f"lic{channels}.txt"
    nvr_ok("license", "issue", "--key", str(DEV_KEY), "--serial", "SIM00000001", "--channels",
        str(channels), "-o", str(issued))
    nvr_ok("license", "install", str(issued), "--board", "sim", "--licence", str(installed))


@pytest.mark.timeout(180)
def test_a_smaller_licence_stops_the_extra_cameras_cleanly(small_clip, camera_server, tmp_path):
    server = camera_server(SimCamera("/cam", small_clip))
    names = [f"cam{i:02d}" for i in range(1, 11)]
    installed = tmp_path / "persist" / "licence.txt"
    install(tmp_path, 16, installed)
    data = tmp_path / "data"
    with RecorderProcess(data, {n: server.url("/cam") for n in names}, "--segment-seconds",
                         "2", "--licence", str(installed), "--board", "sim") as rec:
        for name in names:
            rec.wait_for(lambda e, n=name: e["event"] == "segment" and e["camera"] == n, 90,
                         what=f"a segment from {name}")
        install(tmp_path, 8, installed)
        changed = time.monotonic()
        for name in names[8:]:
            rec.wait_state(name, "not_licensed", 30)
        assert time.monotonic() - changed < 15
        rec.wait_for(lambda e: e["event"] == "segment" and e["camera"] == "cam08"
                     and e["_mono"] > changed + 3, 30, what="cam08 still recording")
        assert rec.stop() == 0
    index = RecordingIndex(data)
    try:
        for name in names[8:]:
            gaps = index.gaps(name)
            assert gaps[-1].cause == "not_licensed" and "8 licensed channels" in gaps[-1].detail
            for seg in index.segments(name):  # every segment closed and indexed, readable
                assert seg.status == "ok" and video_packets(data / seg.path)[0] > 0
        for name in names[:8]:
            assert "not_licensed" not in {g.cause for g in index.gaps(name)}
        alerts = [a["message"] for a in index.alerts() if a["source"] == "licence"]
        assert alerts == ["the licence allows 8 cameras: not recording cam09, cam10"]
    finally:
        index.close()
