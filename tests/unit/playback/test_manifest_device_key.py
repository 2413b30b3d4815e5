"""The device key that signs export manifests: created once, private, and recognisable."""

from __future__ import annotations

import re
import stat
import threading

import pytest

from appliance.core.device_key import fingerprint, load_or_create, normalise_fingerprint
from appliance.core.errors import DataLoss


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_generated_once_private_and_reloaded(tmp_path):
    path = tmp_path / "persist" / "keys" / "device.pem"
    key = load_or_create(path)
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert load_or_create(path).public_raw == key.public_raw
    assert [p.name for p in path.parent.iterdir()] == ["device.pem"]  # no temporary left


def test_fingerprint_is_short_grouped_and_comparable(tmp_path):
    key = load_or_create(tmp_path / "device.pem")
    assert re.fullmatch(r"[0-9a-f]{4}(-[0-9a-f]{4}){3}", key.fingerprint)
    # SHA-256 of 32 zero bytes starts 66687aadf862bd77...
    assert fingerprint(b"\0" * 32) == "6668-7aad-f862-bd77"
    assert normalise_fingerprint(key.fingerprint.upper().replace("-", ":")) == key.fingerprint


def test_loose_permissions_are_tightened(tmp_path):
    path = tmp_path / "keys" / "device.pem"
    load_or_create(path)
    path.chmod(0o644)
    path.parent.chmod(0o755)
    load_or_create(path)
    assert mode(path) == 0o600 and mode(path.parent) == 0o700


def test_two_first_uses_at_once_agree_on_one_key(tmp_path):
    path = tmp_path / "keys" / "device.pem"
    results, barrier = [], threading.Barrier(8)

    def first_use():
        barrier.wait()
        results.append(load_or_create(path).public_raw)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 8 and len(set(results)) == 1


def test_a_damaged_key_is_reported_not_replaced(tmp_path):
    path = tmp_path / "device.pem"
    path.write_text("garbage")
    path.chmod(0o600)
    with pytest.raises(DataLoss, match="damaged"):
        load_or_create(path)
    assert path.read_text() == "garbage"
