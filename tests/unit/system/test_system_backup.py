"""The backup file: a round trip with and without a passphrase, and every bad file refused
with its reason (corrupt, truncated, foreign, too large, path traversal, links, bombs,
tampering, wrong passphrase, bad content) by `read_bundle`, which only reads memory."""

from __future__ import annotations

import base64
import gzip
import json
import os
import tarfile
import time

import pytest

from appliance.core.errors import InvalidConfig, ResourceExhausted
from appliance.system.backup import MAX_BUNDLE, build_bundle, file_name, read_bundle
from appliance.system.sealing import WrongPassphrase
from tests.unit.system.backup_files import (CAMERA_PASSWORD, HASH, PASSPHRASE, SECRETS, USERS,
                                            config, entry, good, members, pack, rewritten,
                                            with_manifest)


def unpacked(data: bytes) -> bytes:
    return gzip.decompress(data)


def test_round_trip_without_passphrase():
    data = good()
    bundle = read_bundle(data, None)
    assert bundle.config == config() and bundle.users == USERS
    assert bundle.cameras is None and bundle.adoption is None and not bundle.sealed
    assert CAMERA_PASSWORD.encode() not in unpacked(data)   # no passphrase: no camera secrets
    assert [m.name for m, _ in members(data)] == [
        "manifest.json", "config/system.json", "config/recorder.toml", "config/cameras.json",
        "config/data-volumes.json", "users.json"]
    assert all(m.mode == 0o600 and m.isreg() for m, _ in members(data))
    summary = bundle.summary()
    assert summary["hostname"] == "garage" and summary["users"] == 2 and not summary["sealed"]
    assert len(data) < 4096  # a small box's configuration is a few KiB


def test_round_trip_with_passphrase_seals_every_secret():
    data = good(PASSPHRASE)
    raw = unpacked(data)
    assert CAMERA_PASSWORD.encode() not in raw and HASH.encode() not in raw
    assert b"Def4ultCamPassw0rd" not in raw
    bundle = read_bundle(data, PASSPHRASE)
    assert bundle.sealed and bundle.users == USERS
    assert bundle.cameras == SECRETS["cameras"] and bundle.adoption == SECRETS["adoption"]


def test_partial_configuration_and_no_users():
    data = build_bundle({"system.json": config()["system.json"]}, None, None, None, {})
    bundle = read_bundle(data, None)
    assert set(bundle.config) == {"system.json"} and bundle.users is None


def test_build_refuses_what_a_backup_cannot_hold():
    with pytest.raises(InvalidConfig, match="at least 10"):
        good("short")
    with pytest.raises(InvalidConfig, match="not a configuration file"):
        build_bundle({"accounts.sqlite3": b"x"}, None, None, None, {})
    with pytest.raises(InvalidConfig, match="no admin"):
        good(users=[dict(USERS[1])])
    noise = base64.b64encode(os.urandom(60_000))  # incompressible: over the limit
    with pytest.raises(ResourceExhausted, match="at most 40 KiB"):
        build_bundle({"recorder.toml": b"# " + noise + b"\n"}, None, None, None, {})


def test_file_name():
    from datetime import datetime, timezone
    assert file_name("garage", datetime(2026, 11, 23, 14, 5, tzinfo=timezone.utc)) == \
        "vigil-config-garage-20261123-140500.tar.gz"


# --- bad files ---------------------------------------------------------------------------------

def refused(data, why: str, passphrase: str | None = None) -> None:
    with pytest.raises(InvalidConfig, match=why):
        read_bundle(data, passphrase)


def test_too_large_files_are_refused_before_reading():
    start = time.monotonic()
    refused(b"\x1f\x8b" + b"\0" * (50 * 1024 * 1024), "at most 40 KiB")
    refused(b"\x1f\x8b" + b"\0" * (MAX_BUNDLE + 1), "at most 40 KiB")
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("data,why", [
    (b"", "empty"), (None, "empty"), ("text", "empty"),
    (b"PK\x03\x04" + b"\0" * 100, "not a Vigil configuration backup"),
    (b"hostname=garage\n", "not a Vigil configuration backup"),
    (gzip.compress(b"not a tar at all" * 100, mtime=0), "damaged or truncated"),
    (gzip.compress(b"", mtime=0), "damaged or truncated"),
])
def test_foreign_files(data, why):
    refused(data, why)


def test_tar_without_manifest_and_foreign_manifests():
    refused(pack([entry("config/system.json", config()["system.json"])]), "has no manifest")
    refused(with_manifest(good(), lambda m: m.update(format="other-nvr-backup")),
            "foreign manifest format")
    refused(with_manifest(good(), lambda m: m.update(version=2)), "newer Vigil")
    for version in (0, "1", True, None):
        refused(with_manifest(good(), lambda m, v=version: m.update(version=v)), "version|format")
    refused(with_manifest(good(), lambda m: m.update(files=[])), "manifest is damaged")
    refused(rewritten(good(), lambda f: f.update({"manifest.json": b"{not json"}),
                      fix_manifest=False), "manifest is damaged")


def test_truncated_files_are_refused_at_every_cut():
    data = good(PASSPHRASE)
    for cut in (10, 100, len(data) // 3, len(data) // 2, len(data) - 30, len(data) - 1):
        with pytest.raises(InvalidConfig):
            read_bundle(data[:cut], PASSPHRASE)


def test_corrupted_bytes_are_refused():
    data = good(PASSPHRASE)
    for position in range(20, len(data) - 8, max(1, len(data) // 40)):
        damaged = bytearray(data)
        damaged[position] ^= 0x55
        with pytest.raises(InvalidConfig):
            read_bundle(bytes(damaged), PASSPHRASE)


@pytest.mark.parametrize("name,why", [
    ("../system.json", "outside the backup"), ("/etc/passwd", "outside the backup"),
    ("config/../../etc/shadow", "outside the backup"), ("./manifest.json", "unexpected file"),
    ("config/accounts.sqlite3", "unexpected file"), ("licence.txt", "unexpected file"),
])
def test_unexpected_and_escaping_names(name, why):
    parts = [(m, c) for m, c in members(good())]
    refused(pack(parts + [entry(name, b"x")]), why)


@pytest.mark.parametrize("kind,link", [
    (tarfile.SYMTYPE, "/etc/shadow"), (tarfile.LNKTYPE, "manifest.json"),
    (tarfile.CHRTYPE, ""), (tarfile.FIFOTYPE, ""), (tarfile.DIRTYPE, ""),
])
def test_links_and_special_files(kind, link):
    parts = [(m, c) for m, c in members(good()) if m.name != "config/system.json"]
    refused(pack(parts + [entry("config/system.json", b"", kind, link)]), "link or special file")


def test_duplicates_bombs_and_manifest_mismatches():
    parts = members(good())
    refused(pack(parts + [parts[1]]), "twice")
    bomb = [(m, c) for m, c in parts if m.name != "config/cameras.json"] + [
        entry("config/cameras.json", b" " * (600 * 1024))]
    bombed = pack(bomb)
    assert len(bombed) < MAX_BUNDLE
    refused(bombed, "too large")
    refused(rewritten(good(), lambda f: f.pop("users.json"), fix_manifest=False),
            "missing users.json")
    refused(rewritten(good(), lambda f: f.update({"users.json": json.dumps(USERS[:1]).encode()}),
                      fix_manifest=False), "users.json is damaged .its checksum does not match")
    refused(rewritten(good(), lambda f: f.update({
        "config/system.json": f["config/system.json"].replace(b"garage", b"attack")}),
        fix_manifest=False), "system.json is damaged")
    extra = rewritten(good(config={"system.json": config()["system.json"]}), lambda f: None)
    refused(pack(members(extra) + [entry("config/recorder.toml", config()["recorder.toml"])]),
            "not listed config/recorder.toml")


def test_a_rewritten_unsealed_backup_is_only_checked_for_sense():
    """Without a passphrase anybody can rewrite a backup consistently (the page says so):
    it is accepted only if every file still makes sense to its owner."""
    changed = rewritten(good(), lambda f: f.update({
        "config/system.json": f["config/system.json"].replace(b"garage", b"other")}))
    assert read_bundle(changed, None).config["system.json"].count(b"other") == 1
    evil = rewritten(good(), lambda f: f.update({
        "config/system.json": f["config/system.json"].replace(b"Europe/Berlin",
                                                              b"../../etc/passwd")}))
    refused(evil, "system.json in the backup: time zone")


def test_a_sealed_backup_refuses_any_change():
    sealed = good(PASSPHRASE)
    for change in (
            lambda f: f.update({"config/system.json":
                                f["config/system.json"].replace(b"garage", b"attack")}),
            lambda f: f.update({"users.json": json.dumps(
                [{"username": "mallory", "role": "admin", "cameras": []}]).encode()}),
            lambda f: f.pop("config/cameras.json"),
            lambda f: f.update({"secrets.bin": f["secrets.bin"][:-1] + b"\0"})):
        with pytest.raises(WrongPassphrase, match="wrong, or the backup file was changed"):
            read_bundle(rewritten(sealed, change), PASSPHRASE)


def test_passphrases():
    sealed = good(PASSPHRASE)
    with pytest.raises(WrongPassphrase, match="passphrase is wrong"):
        read_bundle(sealed, "not the passphrase at all")
    refused(sealed, "protected with a passphrase")
    refused(sealed, "at least 10", passphrase="short")
    refused(good(), "has no passphrase", passphrase=PASSPHRASE)


def test_crafted_key_derivation_parameters_are_refused_fast():
    sealed = good(PASSPHRASE)
    for params in ({"n": 2 ** 20}, {"n": 2 ** 17, "r": 16}, {"p": 64}, {"n": 1000},
                   {"r": "8"}, {"kdf": "pbkdf2"}, {"cipher": "none"}, {"salt": "!!"},
                   {"nonce": base64.b64encode(b"short").decode()}):
        tampered = with_manifest(sealed, lambda m, p=params: m["sealed"].update(p))
        start = time.monotonic()
        with pytest.raises(InvalidConfig, match="bounds|encryption|damaged"):
            read_bundle(tampered, PASSPHRASE)
        assert time.monotonic() - start < 1.0, params


@pytest.mark.parametrize("name,content,why", [
    ("system.json", b'{"hostname": "a;touch /tmp/canary"}', "host name"),
    ("system.json", b"[1, 2]", "system settings"),
    ("system.json", b"\xff", "not valid JSON"),
    ("cameras.json", b'{"cameras": [{"id": "../etc"}]}', "camera is damaged"),
    ("cameras.json", json.dumps({"version": 1, "cameras": [{
        "id": "door", "label": "Door", "host": "x", "main": {"uri": "exec:/bin/sh"}}]}).encode(),
     "camera is damaged"),
    ("cameras.json", b'{"version": 9, "cameras": []}', "format 9"),
    ("cameras.json", b"[]", "not a camera list"),
    ("recorder.toml", b"[shell]\ncmd = 'id'\n", "unknown section"),
    ("recorder.toml", b"[recorder]\nsegment_seconds = -5\n", "recorder"),
    ("recorder.toml", b"[storage]\nmin_free_percent = 1e309\n", "storage"),
    ("recorder.toml", b"not toml = = =", "cannot read"),
    ("data-volumes.json", b'{"volumes": "all"}', "damaged"),
    ("retention.json", b"[]", "retention settings of format 1"),
    ("retention.json", b'{"format": 1, "storage": {"min_free_percent": 1e309}}', "retention"),
    ("recording.json", b'{"format": 1, "cameras": {"door": {"mode": "sometimes"}}}',
     "recording"),
    ("metrics.json", b'{"format": 1, "allowed_networks": ["10.0.0.0/99"]}', "metrics settings"),
    ("restream.json", b'{"format": 1, "enabled": "yes"}', "restream settings are damaged"),
    ("poe-ports.json", b'{"format": 1, "ports": {"Port 1": {"enabled": 1}}}', "port 'Port 1'"),
])
def test_files_that_their_owner_would_not_read_are_refused(name, content, why):
    def change(files):
        files[f"config/{name}"] = content
    refused(rewritten(good(), change), why)


@pytest.mark.parametrize("users,why", [
    ([{"username": "owner", "role": "viewer", "cameras": [], "hash": HASH}], "no admin"),
    ([{"username": "a;b", "role": "admin", "cameras": [], "hash": HASH}], "invalid"),
    ([{"username": "owner\n", "role": "admin", "cameras": [], "hash": HASH}], "invalid"),
    ([{"username": "owner", "role": "root", "cameras": [], "hash": HASH}], "unknown role"),
    ([{"username": "owner", "role": "admin", "cameras": [], "hash": "plain"}], "password"),
    ([{"username": "owner", "role": "admin", "cameras": []}], "password"),
    ([{"username": "owner", "role": "admin", "cameras": ["../x"], "hash": HASH}], "camera list"),
    ([{"username": "owner", "role": "admin", "cameras": [], "hash": HASH, "shell": "1"}],
     "damaged"),
    (USERS + [USERS[0]], "twice"), ([], "empty"), ({"owner": "admin"}, "empty or damaged"),
])
def test_bad_accounts_are_refused(users, why):
    refused(rewritten(good(), lambda f: f.update({"users.json": json.dumps(users).encode()})),
            why)


def test_bad_sealed_credentials_are_refused():
    bad = {"cameras": {"../../etc/x": {"username": "a", "password": "b"}}}
    data = build_bundle(config(), USERS, bad, PASSPHRASE, {})
    refused(data, "camera credentials are damaged", passphrase=PASSPHRASE)
    worse = {"cameras": {"door": {"username": "a", "password": "b", "shell": "id"}}}
    refused(build_bundle(config(), USERS, worse, PASSPHRASE, {}), "damaged",
            passphrase=PASSPHRASE)


def test_reading_never_touches_the_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for data in (good(PASSPHRASE), pack(members(good()) + [entry("../evil", b"x")])):
        try:
            read_bundle(data, PASSPHRASE)
        except InvalidConfig:
            pass
    assert list(tmp_path.iterdir()) == [] and not (tmp_path.parent / "evil").exists()


def test_accepts_bytes_from_a_bytearray():
    assert read_bundle(bytearray(good()), None).users == USERS
