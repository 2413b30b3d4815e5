"""Who may scrape: the token file (made once, 0600, replaced atomically, compared only as
a Bearer credential) and the owner's allowed networks."""

from __future__ import annotations

import ipaddress
import json
import threading

import pytest

from appliance.core.errors import DataLoss, InvalidConfig
from appliance.metrics.access import (ScrapeToken, address_allowed, check_networks,
                                      load_networks, save_networks, settings_path, token_path)


@pytest.fixture
def token(tmp_path) -> ScrapeToken:
    return ScrapeToken(token_path(tmp_path / "config" / "recorder.toml"))


def test_the_token_is_made_once_beside_the_config_with_mode_0600(token, tmp_path):
    assert token.path == tmp_path / "config" / "metrics-token.json"
    assert token.read() is None
    first = token.ensure()
    assert len(first["token"]) >= 43                          # 256 random bits, base64
    assert token.path.stat().st_mode & 0o777 == 0o600
    assert token.ensure() == first == token.read()


def test_concurrent_first_uses_agree_on_one_token(token):
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(token.ensure()["token"]))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(seen) == 8 and len(set(seen)) == 1 and seen[0] == token.read()["token"]


def test_only_the_bearer_credential_matches(token):
    secret = token.ensure()["token"]
    assert token.matches(f"Bearer {secret}")
    assert token.matches(f"bearer  {secret} ")                # scheme is case-insensitive
    for header in (None, "", "Bearer", "Bearer ", f"Basic {secret}", secret,
                   f"Bearer {secret[:-1]}", f"Bearer {secret}x", f"Bearer {secret.upper()}"):
        assert not token.matches(header), header


def test_regenerating_replaces_the_token_and_the_old_one_stops_matching(token):
    old = token.ensure()["token"]
    new = token.regenerate()["token"]
    assert new != old and token.read()["token"] == new
    assert not token.matches(f"Bearer {old}") and token.matches(f"Bearer {new}")
    assert token.path.stat().st_mode & 0o777 == 0o600


def test_without_a_token_file_nothing_matches_and_a_damaged_one_is_dataloss(token):
    assert not token.matches("Bearer anything-at-all-that-is-long-enough-000000")
    token.path.parent.mkdir(parents=True)
    token.path.write_text(json.dumps({"token": ""}))
    assert not token.matches("Bearer ")
    with pytest.raises(DataLoss, match="not a scrape token file"):
        token.ensure()


def test_networks_are_checked_strictly():
    assert [str(n) for n in check_networks(["192.168.1.0/24", "10.0.0.7", "fd00::/64"])] == \
        ["192.168.1.0/24", "10.0.0.7/32", "fd00::/64"]
    for bad, why in ((["192.168.1.5/24"], "host bits"), (["0.0.0.0/0"], "too broad"),
                     (["10.0.0.0/7"], "too broad"), (["::/0"], "too broad"),
                     (["example.com"], "not a network"), ([5], "each entry"),
                     ("10.0.0.0/8", "a list"), ([f"10.0.{i}.0/24" for i in range(33)], "a list")):
        with pytest.raises(InvalidConfig, match=why):
            check_networks(bad)


def test_saved_networks_are_read_back_and_a_damaged_file_is_dataloss(tmp_path):
    path = settings_path(tmp_path / "recorder.toml")
    assert load_networks(path) == []
    save_networks(path, ["192.168.1.0/24"])
    assert load_networks(path) == [ipaddress.ip_network("192.168.1.0/24")]
    path.write_text(json.dumps({"format": 1, "allowed_networks": ["0.0.0.0/0"]}))
    with pytest.raises(DataLoss, match="damaged"):
        load_networks(path)


def test_addresses_inside_the_networks_are_allowed():
    nets = check_networks(["192.168.1.0/24", "fd00::/64"])
    assert address_allowed("192.168.1.20", nets)
    assert address_allowed("::ffff:192.168.1.20", nets)         # a dual-stack listener
    assert address_allowed("fd00::5", nets)
    for outside in ("192.168.2.1", "fd01::1", "", "not an address", "::ffff:10.0.0.1"):
        assert not address_allowed(outside, nets), outside
    assert not address_allowed("192.168.1.20", [])
