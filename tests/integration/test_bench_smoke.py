"""bench/recorder_bench.py end to end, small: 2 low-bitrate streams, ours and ffmpeg.

Real gst-rtsp-server cameras, the real `nvr record`, the real ffmpeg CLI and ffprobe.
It checks that the bench measures and validates, not the performance targets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hw.camsim.server import system_python

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "recorder_bench.py"


def missing_tools() -> list[str]:
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    if not Path(system_python()).exists():
        missing.append(system_python())
    if not Path(sys.executable).with_name("nvr").exists():
        missing.append("nvr in the virtualenv")
    return missing


@pytest.mark.timeout(240)
@pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())}")
def test_bench_runs_both_recorders_and_finds_no_loss(tmp_path):
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, str(BENCH), "--streams", "2", "--clip-size", "640x360",
         "--bitrate-kbps", "800", "--warm", "5", "--window", "15", "--segment-seconds", "10",
         "--out", str(out), "--work", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=220, cwd=ROOT, env=os.environ | {"TZ": "UTC"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| ours |" in result.stdout and "| ffmpeg |" in result.stdout

    results = json.loads(out.read_text())
    variants = results["variants"]
    assert set(variants) == {"ours", "ffmpeg"}
    for name, agg in variants.items():
        assert agg["streams"] == 2, name
        assert agg["cpu_s_per_min_per_stream"] > 0, name
        assert agg["clean_exits"] == agg["processes"], name
    assert variants["ours"]["cpu_ratio_to_ffmpeg"] > 0

    rows = results["streams"]
    assert len(rows) == 4
    assert all(row["packets"] > 0 for row in rows), rows
    ours = [row for row in rows if row["variant"] == "ours"]
    assert sum(row["lost_packets"] for row in ours) == 0, ours
    assert not any(row["lost"] for row in ours), ours
    assert variants["ours"]["lost_packets"] == 0

    assert results["machine"]["nproc"] >= 1
    assert results["versions"]["pyav"] and results["versions"]["ffmpeg_cli"]
    assert not (tmp_path / "work").exists()  # recordings are removed without --keep
