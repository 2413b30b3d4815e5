"""The system settings model refuses every bad value with a reason an owner understands
(security.md A1: shell metacharacters, newlines, traversal, type confusion), accepts
the good ones in a normal form, and stores the settings whole."""

from __future__ import annotations

import json

import pytest

from appliance.core.errors import DataLoss, InvalidConfig
from appliance.system.settings import (NetworkSettings, SystemSettings, TimeSettings,
                                       check_hostname, check_server_name, load_settings,
                                       save_settings)
from appliance.system.timezones import available_zones, check_zone

SHELL = ["a;touch /tmp/canary", "$(touch /tmp/canary)", "`id`", "a|id", "a&&id", "a>b",
         "name\n", "name\nevil", "\nname", "a\rb", "a\x00b", "a b", "' OR 1=1--"]


@pytest.mark.parametrize("given,stored", [
    ("vigil", "vigil"), ("Garage-NVR", "garage-nvr"), ("a", "a"), ("nvr2", "nvr2"),
    ("2nd-floor", "2nd-floor"), ("x" * 63, "x" * 63)])
def test_good_host_names_are_kept_in_lower_case(given, stored):
    assert check_hostname(given) == stored


@pytest.mark.parametrize("bad", SHELL + [
    "", "-abc", "abc-", "a" * 64, "a.b", "nvr.local", "über", "ｖigil", "vigil_1", "12345",
    "localhost", "LOCALHOST", "../../etc/passwd", "*", "a/b"])
def test_bad_host_names_are_refused(bad):
    with pytest.raises(InvalidConfig) as err:
        check_hostname(bad)
    assert "host name" in str(err.value)


@pytest.mark.parametrize("bad", [None, 5, 1.5, True, ["vigil"], {"name": "vigil"}])
def test_host_name_type_confusion_is_refused(bad):
    with pytest.raises(InvalidConfig, match="expected text"):
        check_hostname(bad)


@pytest.mark.parametrize("given,stored", [
    ("pool.ntp.org", "pool.ntp.org"), ("NTP.Example.COM", "ntp.example.com"),
    ("192.168.1.1", "192.168.1.1"), ("2001:db8::1", "2001:db8::1"),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"), ("ntp1", "ntp1"),
    ("time-a.example", "time-a.example")])
def test_good_ntp_servers(given, stored):
    assert check_server_name(given, "NTP server") == stored


@pytest.mark.parametrize("bad", SHELL + [
    "", "pool.ntp.org.", "-bad.example", "bad-.example", "a..b", ".example", "256.1.1.1",
    "1.2.3", "01.2.3.4", "fe80::1%eth0", "fe80::1%$(id)", "::ffff:1.2.3.4%x", "127.0.0.1",
    "::1", "224.0.0.1", "0.0.0.0", "::", "x" * 254, "ntp.example.org:123",
    "[2001:db8::1]", "http://pool.ntp.org", "pool ntp org"])
def test_bad_ntp_servers_are_refused(bad):
    with pytest.raises(InvalidConfig, match="NTP server"):
        check_server_name(bad, "NTP server")


def test_ntp_server_list_limits():
    build = TimeSettings.build
    assert build({"ntp_servers": ["a.example", "b.example"]}).ntp_servers == ("a.example",
                                                                             "b.example")
    for bad, why in ((["a.example"] * 2, "twice"), ([f"s{i}.example" for i in range(5)], "at most"),
                     ("pool.ntp.org", "expected a list"), ([1], "expected text"),
                     ([["x"]], "expected text"), ([{"a": 1}], "expected text")):
        with pytest.raises(InvalidConfig, match=why):
            build({"ntp_servers": bad})
    for bad in ("yes", 1, 0, None, "true", []):
        with pytest.raises(InvalidConfig, match="true or false"):
            build({"ntp": bad})


def test_zone_database_is_read_from_the_box():
    zones = available_zones()
    assert {"UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"} <= zones
    assert not any(z.startswith(("posix/", "right/")) for z in zones)
    assert not {"posixrules", "localtime", "Factory", "zone.tab", "tzdata.zi"} & zones


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires",
                                  "Etc/GMT+5"])
def test_good_zones(zone):
    assert check_zone(zone) == zone


@pytest.mark.parametrize("bad", SHELL + [
    "../../etc/passwd", "/etc/passwd", "Europe/../../etc/passwd", "Europe/Berlin/..",
    "..", ".", "Mars/Olympus_Mons", "Europe/Berlin\n", "europe/berlin", "posix/Europe/Berlin",
    "right/UTC", "posixrules", "localtime", "zone.tab", "", "Europe//Berlin", "Europe/",
    "A/B/C/D", "x" * 40])
def test_bad_zones_are_refused(bad):
    with pytest.raises(InvalidConfig, match="time zone"):
        check_zone(bad)


@pytest.mark.parametrize("bad", [None, 5, ["UTC"], {"zone": "UTC"}])
def test_zone_type_confusion(bad):
    with pytest.raises(InvalidConfig, match="time zone"):
        check_zone(bad)


# --- network ---------------------------------------------------------------------------------

def static(**values) -> NetworkSettings:
    return NetworkSettings.build({"mode": "static", **values})


def test_good_static_network_in_normal_form():
    net = static(address="192.168.1.20/24", gateway="192.168.1.1", dns=["192.168.1.1",
                                                                        "2001:4860:4860::8888"])
    assert net.to_json() == {"mode": "static", "address": "192.168.1.20/24",
                             "gateway": "192.168.1.1", "dns": ["192.168.1.1",
                                                               "2001:4860:4860::8888"]}
    assert static(address="10.0.0.5/255.255.255.0").address == "10.0.0.5/24"
    assert static(address="10.1.2.3/8", dns=["10.0.0.53"]).gateway == ""
    assert NetworkSettings.build({"mode": "dhcp"}) == NetworkSettings()
    # DHCP: what only a static setting has is refused, not silently dropped
    with pytest.raises(InvalidConfig, match="with DHCP the router gives the address"):
        NetworkSettings.build({"mode": "dhcp", "address": "192.168.1.20/24"})
    assert NetworkSettings.build({"mode": "dhcp", "address": "", "dns": []}) == NetworkSettings()


@pytest.mark.parametrize("values,why", [
    ({"address": "192.168.1.20/24", "gateway": "192.168.2.1"}, "outside the box's subnet"),
    ({"address": "192.168.1.20/24", "gateway": "10.0.0.1"}, "outside the box's subnet"),
    ({"address": "192.168.1.20/24", "gateway": "192.168.1.20"}, "box's own address"),
    ({"address": "192.168.1.20/24", "gateway": "192.168.1.255"}, "not usable by a router"),
    ({"address": "192.168.1.20/24", "gateway": "192.168.1.0"}, "not usable by a router"),
    ({"address": "192.168.1.20/24", "gateway": "2001:db8::1"}, "IPv4 address"),
    ({"address": "192.168.1.20/24", "gateway": "192.168.1.1; reboot"}, "IPv4 address"),
    ({"address": "192.168.1.20/24", "dns": ["8.8.8.8"]}, "no gateway to reach it"),
    ({"address": "192.168.1.20/24", "gateway": "192.168.1.1", "dns": ["8.8.8.8;id"]},
     "give an IP address"),
    ({"address": "192.168.1.20/24", "dns": ["192.168.1.1"] * 2}, "twice"),
    ({"address": "192.168.1.20/24", "dns": [f"192.168.1.{i}" for i in range(1, 5)]}, "at most"),
    ({"address": "192.168.1.20/24", "dns": ["fe80::1%eth0"]}, "give an IP address"),
    ({"address": "192.168.1.20/24", "dns": ["127.0.0.53"]}, "not an address a server"),
    ({"address": "192.168.1.20/24", "dns": "192.168.1.1"}, "expected a list"),
    ({"address": "192.168.1.0/24"}, "first and the last"),
    ({"address": "192.168.1.255/24"}, "first and the last"),
    ({"address": "192.168.1.20"}, "add the prefix"),
    ({"address": "192.168.1.20/31"}, "/8 to /30"),
    ({"address": "192.168.1.20/32"}, "/8 to /30"),
    ({"address": "10.1.2.3/7"}, "/8 to /30"),
    ({"address": "192.168.1.20/33"}, "not an IPv4 address"),
    ({"address": "2001:db8::5/64"}, "IPv6 configures itself"),
    ({"address": "127.0.0.5/8"}, "cannot be a device's address"),
    ({"address": "169.254.1.5/16"}, "cannot be a device's address"),
    ({"address": "224.0.0.5/24"}, "cannot be a device's address"),
    ({"address": "240.0.0.5/24"}, "cannot be a device's address"),
    ({"address": "0.1.2.3/8"}, "cannot be a device's address"),
    ({"address": "192.168.1.20/24; reboot"}, "not an IPv4 address"),
    ({"address": "192.168.1.20/24\n"}, "not an IPv4 address"),
    ({"address": ""}, "needs the box's address"),
    ({"address": ["192.168.1.20/24"]}, "expected text"),
    ({"address": "192.168.1.20/24", "bridge": "br0"}, "unknown setting"),
])
def test_bad_static_networks_are_refused_with_the_reason(values, why):
    with pytest.raises(InvalidConfig, match=why):
        static(**values)


def test_bad_mode():
    for bad in ("bridge", "", None, ["dhcp"], "DHCP"):
        with pytest.raises(InvalidConfig, match="network.mode"):
            NetworkSettings.build({"mode": bad})


def test_a_subnet_the_owner_is_not_in_needs_a_confirmation():
    values = {"mode": "static", "address": "10.0.0.5/24", "gateway": "10.0.0.1"}
    with pytest.raises(InvalidConfig, match=r"your computer \(192.168.1.50\) is not in "
                                            r"10.0.0.0/24.*could no longer reach"):
        NetworkSettings.build(values, client="192.168.1.50")
    with pytest.raises(InvalidConfig, match="could no longer reach"):
        NetworkSettings.build(values, client="::ffff:192.168.1.50")
    assert NetworkSettings.build(values, client="192.168.1.50", confirm_other_subnet=True)
    assert NetworkSettings.build(values, client="10.0.0.77")          # in the new subnet
    assert NetworkSettings.build(values, client="127.0.0.1")          # the box itself
    assert NetworkSettings.build(values, client="2001:db8::7")        # says nothing about v4
    assert NetworkSettings.build(values, client=None)


# --- the whole model -----------------------------------------------------------------------------

def test_partial_updates_keep_the_rest_and_check_the_whole():
    base = SystemSettings().updated({"hostname": "garage", "time": {"timezone": "Europe/Berlin"},
                                     "network": {"mode": "static", "address": "192.168.1.20/24",
                                                 "gateway": "192.168.1.1"}})
    changed = base.updated({"time": {"ntp": False}})
    assert changed.time == TimeSettings("Europe/Berlin", False, ())
    assert (changed.hostname, changed.network) == (base.hostname, base.network)
    moved = base.updated({"network": {"address": "192.168.1.30/24"}})
    assert moved.network.gateway == "192.168.1.1" and moved.network.address == "192.168.1.30/24"
    # a change that makes the old gateway unreachable is refused as a whole
    with pytest.raises(InvalidConfig, match="outside"):
        base.updated({"network": {"address": "192.168.5.30/24"}})
    assert base.updated({"network": {"mode": "dhcp"}}).network == NetworkSettings()
    for bad in ({"hostname": "a;b"}, {"time": "UTC"}, {"time": {"zone": "UTC"}},
                {"network": ["dhcp"]}, {"licence": "x"}, ["hostname"], "hostname"):
        with pytest.raises(InvalidConfig):
            base.updated(bad)


def test_store_and_load(tmp_path):
    path = tmp_path / "config" / "system.json"
    assert load_settings(path) == SystemSettings()
    assert load_settings(path, default=SystemSettings("box-7")).hostname == "box-7"
    settings = SystemSettings().updated({"hostname": "garage", "time": {
        "timezone": "Asia/Tokyo", "ntp_servers": ["ntp.nict.jp"]}})
    save_settings(path, settings)
    assert load_settings(path) == settings
    assert json.loads(path.read_text())["version"] == 1
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert not list(path.parent.glob(".*.tmp"))
    for damaged in (b"{", b"[]", b'{"hostname": "a;b"}', b'{"version": 2}', b"\xff\xfe",
                    b'{"hostname": "x", "extra": 1}', json.dumps(
                        {"time": {"timezone": "../../etc/passwd"}}).encode()):
        path.write_bytes(damaged)
        with pytest.raises(DataLoss, match="damaged"):
            load_settings(path)
