"""Licence files: genuine ones install; every bad one (security.md A2) is refused with a
clear reason and the previously installed licence stays in force."""

from __future__ import annotations

import base64
import json
import multiprocessing
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from appliance.cameras.credentials import CredentialStore
from appliance.cameras.registry import Camera, CameraRegistry, StreamInfo
from appliance.config.cameras import build_camera_settings
from appliance.core.errors import ResourceExhausted
from appliance.licensing.licence import Licence, LicenceError, sign
from appliance.licensing.store import LicenceStore

SERIAL = "10000000abcdef01"
TODAY = date(2026, 11, 23)
VENDOR = Ed25519PrivateKey.generate()


def licence(**changes) -> Licence:
    fields = dict(licence_id="lic-0001", serial=SERIAL, channels=16, edition="standard",
                  issued="2026-11-01", expires=None)
    fields.update(changes)
    return Licence(**fields)


def signed(**changes) -> bytes:
    return sign(licence(**changes), VENDOR)


def store(tmp_path, today=TODAY) -> LicenceStore:
    return LicenceStore(tmp_path / "licence.txt", SERIAL, [VENDOR.public_key()], 4,
                        today=lambda: today)


def resign(payload: str) -> bytes:
    """A payload the vendor's tool would never produce, but signed with the real key."""
    sig = base64.b64encode(VENDOR.sign(payload.encode())).decode()
    return f"vigil-licence-v1\n{payload}\ned25519:{sig}\n".encode()


def test_without_a_licence_the_board_default_applies(tmp_path):
    status = store(tmp_path).status()
    assert status.channels == 4 and status.licence is None and status.problem == ""


def test_a_genuine_licence_installs_and_sets_the_channels(tmp_path):
    st = store(tmp_path)
    assert st.install(signed(channels=32)).channels == 32
    assert st.channel_limit() == 32 and st.status().licence.licence_id == "lic-0001"


def flip_bit(data: bytes) -> bytes:
    lines = data.split(b"\n")
    sig = bytearray(base64.b64decode(lines[2][len(b"ed25519:"):]))
    sig[10] ^= 0x01
    lines[2] = b"ed25519:" + base64.b64encode(bytes(sig))
    return b"\n".join(lines)


CANON = '{"channels":16,"edition":"standard","expires":null,"issued":"2026-11-01",' \
        '"licence_id":"lic-0001","serial":"' + SERIAL + '"}'

BAD = {
    "another device": (lambda: signed(serial="10000000ffffffff"), "not for this box"),
    "expired": (lambda: signed(expires="2026-11-22"), "expired on 2026-11-22"),
    "not yet valid": (lambda: signed(issued="2026-12-01"), "not valid before 2026-12-01"),
    "flipped signature bit": (lambda: flip_bit(signed()), "signature is not valid"),
    "wrong key": (lambda: sign(licence(), Ed25519PrivateKey.generate()), "signature is not valid"),
    "trailing data": (lambda: signed() + b"extra\n", "exactly 3 lines"),
    "reordered fields": (lambda: resign(json.dumps(dict(reversed(json.loads(CANON).items())),
                                                   separators=(",", ":"))), "canonical form"),
    "duplicate field": (lambda: resign(CANON[:-1] + ',"channels":32}'), "repeats the field"),
    "channels 0": (lambda: resign(CANON.replace('"channels":16', '"channels":0')), "channels must be"),
    "channels -1": (lambda: resign(CANON.replace('"channels":16', '"channels":-1')), "channels must be"),
    "channels 2^31": (lambda: resign(CANON.replace('"channels":16', '"channels":2147483648')),
                      "channels must be"),
    "channels as text": (lambda: resign(CANON.replace('"channels":16', '"channels":"8"')),
                         "channels must be"),
    "channels 8.5": (lambda: resign(CANON.replace('"channels":16', '"channels":8.5')), "channels must be"),
    "channels true": (lambda: resign(CANON.replace('"channels":16', '"channels":true')), "channels must be"),
    "channels missing": (lambda: resign(CANON.replace('"channels":16,', '')), "missing channels"),
    "NaN": (lambda: resign(CANON.replace('"channels":16', '"channels":NaN')), "not a valid value"),
    "10 MB file": (lambda: signed() + b"x" * 10_000_000, "at most 4096 bytes"),
    "NUL bytes": (lambda: signed().replace(b"standard", b"stan\0ard"), "NUL"),
    "not a licence": (lambda: b"hello\n", "exactly 3 lines"),
    "bad base64": (lambda: signed()[:-10] + b"!!!!!!!!!\n", "not valid base64"),
    "binary": (lambda: bytes(range(256)), "NUL"),
    "impossible date": (lambda: resign(CANON.replace("2026-11-01", "2026-02-30")), "not a real date"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_licences_are_refused_and_the_old_one_stays(tmp_path, case):
    make, message = BAD[case]
    st = store(tmp_path)
    st.install(signed(channels=8, licence_id="lic-good"))
    with pytest.raises(LicenceError, match=message):
        st.install(make())
    status = st.status()
    assert status.channels == 8 and status.licence.licence_id == "lic-good"


def test_an_installed_licence_that_expires_falls_back_to_the_default_and_says_why(tmp_path):
    store(tmp_path).install(signed(expires="2026-12-31"))
    later = store(tmp_path, today=date(2027, 1, 1)).status()
    assert later.channels == 4 and "expired on 2026-12-31" in later.problem


def test_a_licence_file_damaged_on_disk_falls_back_to_the_default(tmp_path):
    st = store(tmp_path)
    st.install(signed())
    (tmp_path / "licence.txt").write_bytes(flip_bit(signed()))
    assert st.status().channels == 4 and "signature" in st.status().problem


def _add(args):
    tmp, i = args
    lic = LicenceStore(Path(tmp) / "licence.txt", SERIAL, [VENDOR.public_key()], 4,
                       today=lambda: TODAY)
    reg = CameraRegistry(Path(tmp) / "cameras.json", CredentialStore(Path(tmp) / "secrets"),
                         build_camera_settings({"incoming_budget_mbps": 10_000}),
                         channel_limit=lic.channel_limit)
    cam = Camera(f"cam{i}", f"Cam {i}", f"10.0.0.{i + 2}", StreamInfo(f"rtsp://10.0.0.{i + 2}/s"),
                 serial=f"S{i}")
    try:
        reg.add(cam)
        return "ok"
    except ResourceExhausted as exc:
        return str(exc)


def test_fifty_parallel_adds_against_an_eight_channel_licence_leave_eight(tmp_path):
    store(tmp_path).install(signed(channels=8))
    with multiprocessing.get_context("fork").Pool(25) as pool:
        results = pool.map(_add, [(str(tmp_path), i) for i in range(50)], chunksize=1)
    assert results.count("ok") == 8
    assert {r for r in results if r != "ok"} == {
        "the licence allows 8 cameras and 8 are recording; disable a camera or install a "
        "licence with more channels"}
    saved = json.loads((tmp_path / "cameras.json").read_text())["cameras"]
    assert len(saved) == 8
