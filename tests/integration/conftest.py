"""Fixtures shared by the integration tests: clips, simulated cameras, recorder processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hw.camsim.clips import ensure_clip

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "var" / "cache"


@pytest.fixture(scope="session")
def small_clip() -> Path:
    """640x360 H.264 with AAC audio, 1 s GOP: cheap to serve and to write."""
    return ensure_clip(CACHE, codec="h264", audio="aac", seconds=6, width=640, height=360,
                       fps=25, bitrate_kbps=800, gop=25)


def ffprobe_json(path: Path, *args: str) -> dict:
    """ffprobe as an independent reader of our files; fails the test on any error."""
    import json
    import subprocess

    out = subprocess.run(["ffprobe", "-v", "error", *args, "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), f"ffprobe {path}: {out.stderr}"
    return json.loads(out.stdout)


def video_packets(path: Path) -> tuple[int, float]:
    """(video packet count, sum of video packet durations in seconds) by ffprobe."""
    data = ffprobe_json(path, "-select_streams", "v:0", "-show_entries",
                        "packet=duration_time,flags")
    packets = data["packets"]
    return len(packets), sum(float(p.get("duration_time", 0)) for p in packets)


@pytest.fixture
def camera_server(tmp_path):
    """Start SimCameraServer instances on free ports; all stopped at the end."""
    from hw.camsim.server import SimCameraServer, free_port

    servers = []

    def start(*cameras, **kwargs):
        server = SimCameraServer(free_port(), list(cameras),
                                 log_path=tmp_path / f"camsim{len(servers)}.log", **kwargs)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
