"""Export of footage recorded by the real recorder: MP4 files that ffmpeg plays, cut at
keyframes, split at a gap; a signed manifest that `verify-export` checks offline; the
range protected from retention; cancel and refusal leave nothing behind."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import threading
import time

import pytest

from appliance.core.device_key import load_or_create
from appliance.core.errors import InvalidConfig
from appliance.playback.export import ExportJob, ExportState
from appliance.playback.export_cli import register
from appliance.playback.manifest import MANIFEST_NAME, SIGNATURE_NAME, verify_export, write_manifest
from appliance.recorder.index import RecordingIndex
from appliance.recorder.integrity import chain_problems
from hw.camsim.clips import ensure_clip
from hw.camsim.server import SimCamera
from tests.integration.conftest import CACHE, ffprobe_json, video_packets
from tests.integration.recorder_process import RecorderProcess

GOP_US = 1_000_000  # the clips' keyframe interval
FRAME_S = 0.04


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, small_clip):
    """Three cameras for ~8 s (2 s segments; `g711` with G.711 audio), the recorder
    stopped, then `cam` alone for two more segments: a gap with a known cause.
    Module-scoped (one recording for every test here), so it starts its own server the
    way the `camera_server` fixture does."""
    from hw.camsim.server import SimCameraServer, free_port

    tmp = tmp_path_factory.mktemp("export")
    g711_clip = ensure_clip(CACHE, codec="h264", audio="pcm_mulaw", seconds=6, width=320,
                            height=240, fps=25, bitrate_kbps=300, gop=25)
    server = SimCameraServer(free_port(), [SimCamera("/cam1", small_clip, audio="aac"),
                                           SimCamera("/cam2", small_clip, audio="aac"),
                                           SimCamera("/g711", g711_clip, audio="pcm_mulaw")],
                             log_path=tmp / "camsim.log")
    server.start()
    data = tmp / "data"
    try:
        urls = {name: server.url(f"/{mount}") for name, mount in
                (("cam", "cam1"), ("cam2", "cam2"), ("g711", "g711"))}
        with RecorderProcess(data, urls, "--segment-seconds", "2") as rec:
            for cam in urls:
                rec.wait_for(lambda e, c=cam: e["event"] == "segment" and e["camera"] == c, 60,
                             count=4, what=f"{cam} segments")
            assert rec.stop() == 0
        # The restarted recorder back-dates its first frames by up to ~1 s (the demuxer's
        # start-up burst); a 2 s pause leaves a real gap after that.
        time.sleep(2.0)
        with RecorderProcess(data, {"cam": urls["cam"]}, "--segment-seconds", "2") as rec:
            rec.wait_for(lambda e: e["event"] == "segment", 60, count=2, what="segments")
            assert rec.stop() == 0
    finally:
        server.stop()
    index = RecordingIndex(data)
    segs = sorted(index.segments("cam"), key=lambda s: s.seq)
    index.close()
    split = next(i for i in range(1, len(segs)) if segs[i].start_us - segs[i - 1].end_us > 5e5)
    return {"data": data, "run1": segs[:split], "run2": segs[split:],
            "key": load_or_create(tmp / "keys" / "device.pem")}


def export(recorded, out, cameras, start_us, end_us, **kwargs) -> ExportJob:
    index = RecordingIndex(recorded["data"])
    try:
        job = ExportJob(index, recorded["data"], cameras, start_us, end_us, out,
                        key=recorded["key"], serial="10000000feedbeef", **kwargs)
        job.start()
        assert job.wait(30), "export did not finish in 30 s"
    finally:
        index.close()
    return job


def protections_of(recorded, job):
    index = RecordingIndex(recorded["data"])
    try:
        return [p for p in index.protections() if p.reason == f"export {job.export_id}"]
    finally:
        index.close()


def decode_errors(path) -> str:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=60)
    return out.stderr.strip() + ("" if out.returncode == 0 else f" (exit {out.returncode})")


def test_export_across_segment_boundaries_plays_and_stays_protected(recorded, tmp_path):
    run1 = recorded["run1"]
    assert len(run1) >= 4
    start = run1[0].start_us + 1_500_000   # mid-GOP, inside the first segment
    end = run1[3].start_us + 1_200_000     # inside the fourth
    job = export(recorded, tmp_path / "out", ["cam", "cam2"], start, end)
    assert job.state == ExportState.DONE, job.error
    manifest = json.loads((tmp_path / "out" / MANIFEST_NAME).read_bytes())
    cam = next(c for c in manifest["cameras"] if c["camera"] == "cam")
    assert sorted(f["name"] for c in manifest["cameras"] for f in c["files"]) == \
        sorted(p.name for p in tmp_path.joinpath("out").glob("*.mp4"))
    (entry,) = cam["files"]
    path = tmp_path / "out" / entry["name"]

    probe = ffprobe_json(path, "-show_format", "-show_streams")
    assert [s["codec_name"] for s in probe["streams"]] == ["h264", "aac"]
    assert decode_errors(path) == ""
    # Starts at the keyframe at or before `start`, ends with the last frame before `end`.
    assert start - GOP_US < entry["start_us"] <= start
    assert end <= entry["end_us"] <= end + 2 * FRAME_S * 1e6
    duration = float(probe["format"]["duration"])
    assert abs(duration - (end - start) / 1e6) <= GOP_US / 1e6 + 0.1
    count, summed = video_packets(path)
    assert abs(count - duration / FRAME_S) <= 2 and count == entry["video_packets"]
    assert abs(summed - duration) <= 0.1
    # Continuous timestamps: every video frame 40 ms after the previous, across 3 boundaries.
    dts = [float(p["dts_time"]) for p in ffprobe_json(
        path, "-select_streams", "v:0", "-show_entries", "packet=dts_time")["packets"]]
    assert dts[0] == 0 and all(abs(b - a - FRAME_S) < 0.002 for a, b in zip(dts, dts[1:]))
    # The source segments: the four the range touches, intact and linked.
    assert [s["seq"] for s in cam["segments"]] == [s.seq for s in run1[:4]]
    assert all(s["file_check"] == "ok" for s in cam["segments"])
    assert chain_problems(run1[:4]) == []
    assert cam["gaps"] == [] and cam["audio_dropped"] is None
    # Protected from retention, per camera, for the requested range, until removed.
    rows = protections_of(recorded, job)
    assert sorted((p.camera, p.start_us, p.end_us) for p in rows) == [
        ("cam", start, end), ("cam2", start, end)]
    report = verify_export(tmp_path / "out", recorded["key"].fingerprint)
    assert report.ok, report.problems


def test_range_is_clipped_to_what_was_recorded_and_a_gap_splits_the_file(recorded, tmp_path):
    run1, run2 = recorded["run1"], recorded["run2"]
    start = run1[0].start_us - 5_000_000
    end = run2[0].end_us
    job = export(recorded, tmp_path / "out", ["cam"], start, end)
    assert job.state == ExportState.DONE, job.error
    (cam,) = job.manifest["cameras"]
    first, second = cam["files"]
    assert first["start_us"] == run1[0].start_us and second["start_us"] == run2[0].start_us
    assert abs(first["end_us"] - run1[-1].end_us) <= 2 * FRAME_S * 1e6
    for entry in (first, second):
        path = tmp_path / "out" / entry["name"]
        assert decode_errors(path) == ""
        assert abs(float(ffprobe_json(path, "-show_format")["format"]["duration"]) -
                   (entry["end_us"] - entry["start_us"]) / 1e6) <= 0.1
    leading, outage = cam["gaps"]
    assert (leading["start_us"], leading["end_us"]) == (start, run1[0].start_us)
    assert (outage["start_us"], outage["end_us"]) == (run1[-1].end_us, run2[0].start_us)
    assert "recorder_stopped" in outage["causes"]
    report = verify_export(tmp_path / "out")
    assert report.ok, report.problems
    assert any("no footage" in note and "recorder_stopped" in note for note in report.notes)


def test_g711_audio_is_dropped_and_the_manifest_says_so(recorded, tmp_path):
    index = RecordingIndex(recorded["data"])
    segs = index.segments("g711")
    index.close()
    assert segs[0].audio_codec == "pcm_mulaw"
    job = export(recorded, tmp_path / "out", ["g711"], segs[0].start_us, segs[1].end_us)
    assert job.state == ExportState.DONE, job.error
    (cam,) = job.manifest["cameras"]
    assert cam["audio_dropped"].startswith("pcm_mulaw: G.711 audio cannot be stored in MP4")
    path = tmp_path / "out" / cam["files"][0]["name"]
    assert [s["codec_name"] for s in ffprobe_json(path, "-show_streams")["streams"]] == ["h264"]
    assert decode_errors(path) == ""
    report = verify_export(tmp_path / "out")
    assert report.ok and any("G.711" in note for note in report.notes)


# --- verify-export --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exports(recorded, tmp_path_factory):
    """Two exports of different ranges, each verified clean."""
    base = tmp_path_factory.mktemp("exports")
    run1 = recorded["run1"]
    a = export(recorded, base / "a", ["cam"], run1[0].start_us + 500_000, run1[3].end_us)
    b = export(recorded, base / "b", ["cam"], run1[1].start_us, run1[2].end_us)
    assert a.state == b.state == ExportState.DONE
    return base, a, b


def nvr(*argv) -> int:
    parser = argparse.ArgumentParser(prog="nvr")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args)


def tampered(exports, tmp_path, change):
    base, a, b = exports
    copy = tmp_path / "copy"
    shutil.copytree(base / "a", copy)
    change(copy, a, b)
    return copy


def flip_byte(path, offset=None) -> None:
    data = bytearray(path.read_bytes())
    offset = len(data) // 2 if offset is None else offset
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_verify_export_passes_on_a_fresh_export(exports, recorded, capsys):
    base, a, _ = exports
    assert nvr("verify-export", base / "a") == 0
    out = capsys.readouterr().out
    assert f"device key fingerprint: {recorded['key'].fingerprint}" in out
    assert "signature: valid" in out and out.rstrip().endswith("OK: the export is intact")
    assert nvr("verify-export", base / "a", "--fingerprint", "1234-5678-9abc-def0") == 1


def test_verify_export_names_a_changed_mp4(exports, tmp_path, capsys):
    copy = tampered(exports, tmp_path, lambda d, a, b: flip_byte(d / a.files[0].name))
    assert nvr("verify-export", copy) == 1
    out = capsys.readouterr().out
    assert f"FAIL: camera cam: exported file {exports[1].files[0].name} has a different SHA-256" \
        in out and "signature: valid" in out


def test_verify_export_catches_one_byte_changed_in_the_manifest(exports, tmp_path):
    def change(d, a, b):
        text = (d / MANIFEST_NAME).read_bytes()
        flip_byte(d / MANIFEST_NAME, text.index(b'"serial":"') + 12)

    report = verify_export(tampered(exports, tmp_path, change))
    assert report.signature == "invalid"
    assert report.problems == ["signature invalid: manifest.json was changed after the export "
                               "(or manifest.sig belongs to another manifest)"]


def test_verify_export_catches_a_manifest_swapped_from_another_export(exports, tmp_path):
    def change(d, a, b):
        for name in (MANIFEST_NAME, SIGNATURE_NAME):
            shutil.copy(b.out_dir / name, d / name)

    report = verify_export(tampered(exports, tmp_path, change))
    _, a, b = exports
    assert report.signature == "valid"  # a genuine manifest: only the files give it away
    assert report.problems == [f"camera cam: exported file {b.files[0].name} is missing",
                               f"unexpected file {a.files[0].name} (not listed in the manifest)"]


def test_verify_export_finds_a_removed_segment_that_the_signature_cannot(exports, recorded,
                                                                           tmp_path):
    def change(d, a, b):
        manifest = json.loads((d / MANIFEST_NAME).read_bytes())
        del manifest["cameras"][0]["segments"][1]
        write_manifest(d, manifest, recorded["key"])  # re-signed with the device key itself

    report = verify_export(tampered(exports, tmp_path, change))
    segs = exports[1].manifest["cameras"][0]["segments"]
    assert report.signature == "valid"
    assert report.problems == [f"camera cam: source segment {segs[2]['path']}: does not follow "
                               f"{segs[0]['path']} (a segment was removed, added or reordered)"]


def test_verify_export_reports_a_deleted_mp4(exports, tmp_path, capsys):
    copy = tampered(exports, tmp_path, lambda d, a, b: (d / a.files[0].name).unlink())
    assert nvr("verify-export", copy, "--json") == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["problems"] == [
        f"camera cam: exported file {exports[1].files[0].name} is missing"]


# --- cancel and refusal ----------------------------------------------------------------------
def test_cancel_mid_way_stops_within_a_second_and_leaves_nothing(recorded, tmp_path):
    paused, resume = threading.Event(), threading.Event()
    seen = []

    def on_progress(fraction):
        seen.append(fraction)
        if fraction >= 0.4 and not paused.is_set():
            paused.set()
            resume.wait(10)

    run1, run2 = recorded["run1"], recorded["run2"]
    out = tmp_path / "parent" / "out"
    out.parent.mkdir()
    index = RecordingIndex(recorded["data"])
    try:
        job = ExportJob(index, recorded["data"], ["cam", "cam2"], run1[0].start_us,
                        run2[-1].end_us, out, key=recorded["key"], on_progress=on_progress)
        job.start()
        assert paused.wait(20), f"the export never got to 40 % (progress {seen})"
        assert job.state == ExportState.RUNNING
        partial = list(out.parent.glob(".out.partial-*/*.mp4"))
        assert partial, "an MP4 is being written at this point"
        assert len(protections_of(recorded, job)) == 2
        began = time.monotonic()
        job.cancel()
        resume.set()
        assert job.wait(2)
        assert time.monotonic() - began < 1.0
    finally:
        index.close()
    assert job.state == ExportState.CANCELLED and job.error is None
    assert list(out.parent.iterdir()) == []  # no partial directory, no files
    assert protections_of(recorded, job) == []


def test_a_range_without_footage_fails_clearly(recorded, tmp_path):
    first = recorded["run1"][0].start_us
    job = export(recorded, tmp_path / "out", ["cam"], first - 86_400_000_000,
                 first - 3_600_000_000)
    assert job.state == ExportState.FAILED
    assert job.error.startswith("no footage of cam between ")
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
    assert protections_of(recorded, job) == []
    unknown = export(recorded, tmp_path / "out", ["nosuchcam"], first, first + 1_000_000)
    assert unknown.state == ExportState.FAILED and "nosuchcam has no recordings" in unknown.error


def test_arguments_that_cannot_work_are_refused_at_once(recorded, tmp_path):
    index = RecordingIndex(recorded["data"])
    first = recorded["run1"][0].start_us
    try:
        with pytest.raises(InvalidConfig, match="at most 31 days"):
            ExportJob(index, recorded["data"], ["cam"], first, first + 32 * 86_400_000_000,
                      tmp_path / "out", key=recorded["key"])
        with pytest.raises(InvalidConfig, match="after its start"):
            ExportJob(index, recorded["data"], ["cam"], first, first, tmp_path / "out",
                      key=recorded["key"])
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("x")
        with pytest.raises(InvalidConfig, match="not an empty directory"):
            ExportJob(index, recorded["data"], ["cam"], first, first + 1, tmp_path / "full",
                      key=recorded["key"])
        with pytest.raises(InvalidConfig, match="inside the recordings"):
            ExportJob(index, recorded["data"], ["cam"], first, first + 1,
                      recorded["data"] / "recordings" / "x", key=recorded["key"])
    finally:
        index.close()


def test_never_reads_outside_the_data_directory(recorded, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(recorded["data"], data)
    secret = tmp_path / "secret.mp4"
    shutil.copy(data / recorded["run1"][1].path, secret)
    index = RecordingIndex(data)
    try:
        seg = index.segments("cam")[1]
        index.update_segment(seg.id, path="recordings/cam/../../../secret.mp4")
        job = ExportJob(index, data, ["cam"], recorded["run1"][0].start_us,
                        recorded["run1"][2].end_us, tmp_path / "out", key=recorded["key"])
        job.start()
        assert job.wait(30)
    finally:
        index.close()
    assert job.state == ExportState.FAILED
    assert "points outside the data directory" in job.error
    assert not (tmp_path / "out").exists()


def test_nvr_export_command(recorded, tmp_path, capsys):
    from appliance.cli import iso

    run1 = recorded["run1"]
    code = nvr("export", "--data", recorded["data"], "--camera", "cam",
               "--from", iso(run1[1].start_us), "--to", iso(run1[2].end_us),
               "--out", tmp_path / "out", "--key", recorded["key"].path, "--serial", "abc123",
               "--json")
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["state"] == "done" and result["fingerprint"] == recorded["key"].fingerprint
    assert verify_export(tmp_path / "out").serial == "abc123"
