"""The export manifest: canonical bytes, the detached signature, and the offline check of
an export directory (on synthetic exports: plain files stand in for the MP4s)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest

from appliance.core.device_key import load_or_create
from appliance.core.errors import InvalidConfig
from appliance.playback.manifest import (MANIFEST_NAME, SIGNATURE_NAME, SIGNING_CONTEXT,
                                         build_manifest, canonical, segment_entry, sign,
                                         signature_valid, verify_export, write_manifest)
from appliance.recorder.index import Segment
from appliance.recorder.integrity import GENESIS, chain_link


@pytest.fixture
def key(tmp_path):
    return load_or_create(tmp_path / "keys" / "device.pem")


def test_canonical_form_sorts_keys_without_spaces_in_ascii():
    data = canonical({"b": 1, "a": {"z": [1, "x"], "y": None}, "é": "caméra", "t": True})
    assert data == b'{"a":{"y":null,"z":[1,"x"]},"b":1,"t":true,"\\u00e9":"cam\\u00e9ra"}'
    assert canonical(json.loads(data)) == data  # a fixed point: parse and re-serialise


@pytest.mark.parametrize("value", [1.5, float("nan"), {1: "x"}, (1, 2), b"x"])
def test_canonical_form_refuses_what_has_no_single_text_form(value):
    with pytest.raises(InvalidConfig):
        canonical({"v": value})


def test_signature_covers_every_byte_and_names_its_purpose(key, tmp_path):
    data = canonical({"export_id": "x", "n": 1})
    sig = sign(data, key)
    assert len(base64.b64decode(sig)) == 64
    assert signature_valid(data, sig, key.public_b64)
    assert not signature_valid(data.replace(b"1", b"2"), sig, key.public_b64)
    assert not signature_valid(data, "not base64!", key.public_b64)
    other = load_or_create(tmp_path / "other" / "device.pem")
    assert not signature_valid(data, sig, other.public_b64)
    # the signature is over the context prefix + manifest: a bare-bytes signature is refused
    bare = base64.b64encode(key.sign(data)).decode()
    assert not signature_valid(data, bare, key.public_b64)
    key.public_key.verify(base64.b64decode(sig), SIGNING_CONTEXT + data)


# --- synthetic exports -----------------------------------------------------------------------
def chain(camera: str, count: int, first_seq: int = 7) -> list[Segment]:
    """`count` linked segments, as the recorder writes them (seq 7.. : not the genesis)."""
    segs, prev = [], "ab" * 32
    for i in range(count):
        seq = first_seq + i
        start = 1_800_000_000_000_000 + i * 2_000_000
        sha = hashlib.sha256(f"{camera}{seq}".encode()).hexdigest()
        seg = Segment(camera, seq, start, start + 2_000_000, 1000 + i,
                      f"recordings/{camera}/x/{seq:06d}.mp4", sha256=sha, prev_chain=prev)
        seg.chain = chain_link(prev, camera, seq, seg.start_us, seg.end_us, seg.bytes, sha)
        prev = seg.chain
        segs.append(seg)
    return segs


def make_export(directory, key, files=None, segments=None):
    directory.mkdir()
    files = files if files is not None else {"cam_20270115T080000.000Z.mp4": b"fake mp4 bytes"}
    segments = segments if segments is not None else chain("cam", 4)
    entries = []
    for name, content in files.items():
        (directory / name).write_bytes(content)
        entries.append({"name": name, "sha256": hashlib.sha256(content).hexdigest(),
                        "bytes": len(content)})
    manifest = build_manifest(
        export_id="e1", created_us=1_800_000_100_000_000, serial="10000000abcd", key=key,
        requested=(segments[0].start_us, segments[-1].end_us),
        covered=(segments[0].start_us, segments[-1].end_us),
        cameras=[{"camera": "cam", "files": entries,
                  "segments": [segment_entry(s, "ok") for s in segments],
                  "gaps": [], "audio_dropped": None}],
        gap_split_us=100_000)
    write_manifest(directory, manifest, key)
    return manifest


def test_a_fresh_export_verifies_and_names_its_key(key, tmp_path):
    make_export(tmp_path / "e", key)
    report = verify_export(tmp_path / "e")
    assert report.ok, report.problems
    assert report.signature == "valid" and report.fingerprint == key.fingerprint
    assert report.files_checked == 1 and report.segments_checked == 4
    assert (tmp_path / "e" / MANIFEST_NAME).read_bytes() == canonical(
        json.loads((tmp_path / "e" / MANIFEST_NAME).read_bytes()))
    assert verify_export(tmp_path / "e", key.fingerprint.upper().replace("-", " ")).ok


def test_changed_file_missing_file_and_extra_files_are_named(key, tmp_path):
    files = {"cam_a.mp4": b"first", "cam_b.mp4": b"second"}
    make_export(tmp_path / "e", key, files)
    (tmp_path / "e" / "cam_a.mp4").write_bytes(b"First")
    (tmp_path / "e" / "cam_b.mp4").unlink()
    (tmp_path / "e" / "notes.txt").write_text("hello")
    (tmp_path / "e" / "sub").mkdir()
    report = verify_export(tmp_path / "e")
    assert report.signature == "valid"
    assert report.problems == [
        "camera cam: exported file cam_a.mp4 has a different SHA-256 than the manifest lists "
        "(the file was changed)",
        "camera cam: exported file cam_b.mp4 is missing",
        "unexpected file notes.txt (not listed in the manifest)",
        "unexpected directory sub (not listed in the manifest)"]


def test_a_changed_manifest_fails_its_signature(key, tmp_path):
    make_export(tmp_path / "e", key)
    path = tmp_path / "e" / MANIFEST_NAME
    path.write_bytes(path.read_bytes().replace(b'"serial":"10000000abcd"',
                                               b'"serial":"10000000abce"'))
    report = verify_export(tmp_path / "e")
    assert report.signature == "invalid"
    assert report.problems == ["signature invalid: manifest.json was changed after the export "
                               "(or manifest.sig belongs to another manifest)"]


def test_a_removed_or_reordered_segment_breaks_the_chain_even_when_re_signed(key, tmp_path):
    segs = chain("cam", 4)
    manifest = make_export(tmp_path / "e", key, segments=segs)
    listed = manifest["cameras"][0]["segments"]
    manifest["cameras"][0]["segments"] = listed[:1] + listed[2:]
    write_manifest(tmp_path / "e", manifest, key)  # whoever holds the key re-signs
    report = verify_export(tmp_path / "e")
    assert report.signature == "valid"
    assert report.problems == [f"camera cam: source segment {segs[2].path}: does not follow "
                               f"{segs[0].path} (a segment was removed, added or reordered)"]
    manifest["cameras"][0]["segments"] = [listed[0], listed[2], listed[1], listed[3]]
    write_manifest(tmp_path / "e", manifest, key)
    assert len(verify_export(tmp_path / "e").problems) == 3


def test_a_segment_changed_on_the_box_before_export_is_a_problem(key, tmp_path):
    manifest = make_export(tmp_path / "e", key)
    manifest["cameras"][0]["segments"][1]["file_check"] = "changed"
    manifest["cameras"][0]["segments"][2]["file_check"] = "missing"
    write_manifest(tmp_path / "e", manifest, key)
    report = verify_export(tmp_path / "e")
    path = manifest["cameras"][0]["segments"][1]["path"]
    assert report.problems == [f"camera cam: source segment {path} no longer matched its "
                               "recorded SHA-256 when exported (it was changed on the box "
                               "after recording)"]
    assert any("was lost before the export" in note for note in report.notes)


def test_another_key_a_missing_signature_and_unsafe_names(key, tmp_path):
    make_export(tmp_path / "e", key)
    report = verify_export(tmp_path / "e", expect_fingerprint="0000-0000-0000-0000")
    assert report.problems == [f"the export was signed by device key {key.fingerprint}, not "
                               "by 0000-0000-0000-0000 (another box, or a forged key)"]
    (tmp_path / "e" / SIGNATURE_NAME).unlink()
    assert verify_export(tmp_path / "e").problems == [
        "manifest.sig is missing: the manifest cannot be trusted"]
    manifest = make_export(tmp_path / "f", key)
    manifest["cameras"][0]["files"][0]["name"] = "../../etc/passwd"
    write_manifest(tmp_path / "f", manifest, key)
    problems = verify_export(tmp_path / "f").problems
    assert problems[0] == "camera cam: the manifest lists an unsafe file name " \
                          "'../../etc/passwd'; not read"


def test_not_an_export(tmp_path):
    assert verify_export(tmp_path / "nothing").problems == [f"{tmp_path / 'nothing'} is not a "
                                                            "directory"]
    (tmp_path / "e").mkdir()
    assert verify_export(tmp_path / "e").problems == ["manifest.json is missing: this is not a "
                                                      "complete export"]
    (tmp_path / "e" / MANIFEST_NAME).write_text("{not json")
    assert verify_export(tmp_path / "e").problems[0].startswith("manifest.json is not valid JSON")


def test_first_segment_after_genesis_or_retention_still_verifies(key, tmp_path):
    segs = chain("cam", 3, first_seq=1)
    segs[0].prev_chain = GENESIS
    prev = GENESIS
    for seg in segs:
        seg.prev_chain = prev
        seg.chain = prev = chain_link(prev, "cam", seg.seq, seg.start_us, seg.end_us, seg.bytes,
                                      seg.sha256)
    make_export(tmp_path / "e", key, segments=segs)
    assert verify_export(tmp_path / "e").ok
