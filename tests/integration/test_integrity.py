"""Every segment the real recorder closes carries its SHA-256 and a per-camera chain link
that continues across restarts; one changed byte or one removed segment is detected."""

from __future__ import annotations

import pytest

from appliance.recorder.index import RecordingIndex
from appliance.recorder.integrity import GENESIS, chain_problems
from hw.camsim.server import SimCamera
from tests.integration.recorder_process import RecorderProcess


def record(data, url, segments: int) -> None:
    with RecorderProcess(data, {"cam": url}, "--segment-seconds", "2") as rec:
        rec.wait_for(lambda e: e["event"] == "segment", 60, count=segments, what="segments")
        assert rec.stop() == 0


@pytest.mark.timeout(120)
def test_hash_chain_across_restarts_and_tampering(small_clip, camera_server, tmp_path):
    server = camera_server(SimCamera("/cam1", small_clip))
    data = tmp_path / "data"
    record(data, server.url("/cam1"), 2)
    record(data, server.url("/cam1"), 2)  # a restart: the chain must continue
    index = RecordingIndex(data)
    try:
        segs = sorted(index.segments("cam"), key=lambda s: s.seq)
        assert len(segs) >= 4 and segs[0].prev_chain == GENESIS
        assert chain_problems(segs, data) == []
        with open(data / segs[1].path, "r+b") as f:  # one byte changed
            f.seek(segs[1].bytes // 2)
            byte = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([byte[0] ^ 0xFF]))
        assert chain_problems(segs, data) == [
            f"{segs[1].path}: the file's contents changed since it was recorded"]
        without = segs[:2] + segs[3:]  # one segment removed from the middle
        problems = chain_problems(without)
        assert problems == [f"{segs[3].path}: does not follow {segs[1].path} (a segment was "
                            "removed, added or reordered)"]
    finally:
        index.close()
