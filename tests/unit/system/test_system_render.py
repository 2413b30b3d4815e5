"""The files systemd reads, as rendered: systemd's ini-like syntax (systemd.syntax(7):
`[Section]` and `Key=Value` lines, no continuation lines, repeated keys for lists),
the right keys for DHCP and static, and no way for a value to add a line. Where this
machine has systemd-analyze, it confirms that timesyncd finds the drop-in where we put it."""

from __future__ import annotations

import configparser
import shutil
import subprocess

import pytest

from appliance.core.errors import InvalidConfig
from appliance.system.backends import install_files
from appliance.system.render import (HOSTNAME_FILE, LOCALTIME_LINK, NETWORK_FILE, TIMESYNCD_FILE,
                                     TIMEZONE_FILE, check_interface, render)
from appliance.system.settings import NetworkSettings, SystemSettings, TimeSettings


class _Repeated(dict):
    """configparser's section dict that keeps repeated keys (DNS=, Address=) as systemd
    does, instead of the last one winning."""

    def __setitem__(self, key, value):
        if isinstance(value, list) and isinstance(self.get(key), list):
            self[key].extend(value)
        else:
            super().__setitem__(key, value)


def parse(data: bytes) -> dict[str, dict[str, list[str]]]:
    text = data.decode("ascii")  # systemd's files here are plain ASCII
    for line in text.splitlines():
        assert line == line.strip(), f"leading or trailing space: {line!r}"
        assert not line or line.startswith(("#", "[")) or "=" in line, line
    parser = configparser.RawConfigParser(strict=False, dict_type=_Repeated, delimiters=("=",),
                                          comment_prefixes=("#", ";"), interpolation=None,
                                          empty_lines_in_values=False)
    parser.optionxform = str  # keys are case-sensitive
    parser.read_string(text)
    return {s: {k: v.split("\n") for k, v in parser[s].items()} for s in parser.sections()}


def settings(**network) -> SystemSettings:
    return SystemSettings("garage", TimeSettings("Europe/Berlin", True, ()),
                          NetworkSettings.build(network) if network else NetworkSettings())


def test_dhcp_network_file():
    files = render(settings(), "end0").files
    assert parse(files[NETWORK_FILE]) == {
        "Match": {"Name": ["end0"]},
        "Network": {"DHCP": ["ipv4"], "IPv6AcceptRA": ["yes"]},
        "DHCPv4": {"UseHostname": ["no"]}}


def test_dhcp_with_own_ntp_servers_ignores_the_routers():
    config = settings().updated({"time": {"ntp_servers": ["192.168.1.2", "ntp.example.org"]}})
    parsed = parse(render(config, "eth0").files[NETWORK_FILE])
    assert parsed["DHCPv4"] == {"UseHostname": ["no"], "UseNTP": ["no"]}


def test_static_network_file_repeats_dns():
    config = settings(mode="static", address="192.168.1.20/24", gateway="192.168.1.1",
                      dns=["192.168.1.1", "2001:4860:4860::8888"])
    parsed = parse(render(config, "eth0").files[NETWORK_FILE])
    assert parsed == {"Match": {"Name": ["eth0"]},
                      "Network": {"Address": ["192.168.1.20/24"], "Gateway": ["192.168.1.1"],
                                  "DNS": ["192.168.1.1", "2001:4860:4860::8888"],
                                  "IPv6AcceptRA": ["yes"]}}
    no_gateway = settings(mode="static", address="10.1.2.3/8")
    assert "Gateway" not in parse(render(no_gateway, "eth0").files[NETWORK_FILE])["Network"]


def test_timesyncd_drop_in_only_with_servers_and_ntp_on():
    on = settings().updated({"time": {"ntp_servers": ["ntp.example.org", "192.0.2.1"]}})
    parsed = parse(render(on, "eth0").files[TIMESYNCD_FILE])
    # FallbackNTP= repeats the list: an empty one would not remove the compiled-in pool
    assert parsed == {"Time": {"NTP": ["ntp.example.org 192.0.2.1"],
                               "FallbackNTP": ["ntp.example.org 192.0.2.1"]}}
    assert render(settings(), "eth0").files[TIMESYNCD_FILE] is None          # defaults
    off = on.updated({"time": {"ntp": False}})
    assert render(off, "eth0").files[TIMESYNCD_FILE] is None


def test_host_name_and_zone_files_and_link():
    out = render(settings(), "eth0")
    assert out.files[HOSTNAME_FILE] == b"garage\n"
    assert out.files[TIMEZONE_FILE] == b"Europe/Berlin\n"
    assert out.links == {LOCALTIME_LINK: "/usr/share/zoneinfo/Europe/Berlin"}


@pytest.mark.parametrize("field,value", [
    ("hostname", "garage\n[Network]\nDHCP=no"), ("hostname", "a\rb"), ("hostname", " a"),
])
def test_a_value_never_becomes_a_second_line_even_past_the_model(field, value):
    bypassed = SystemSettings(**{field: value})   # not built through the checks
    with pytest.raises(InvalidConfig, match="line break|surrounding"):
        render(bypassed, "eth0")
    smuggled = SystemSettings(time=TimeSettings("UTC", True, ("a.example\nFallbackNTP=evil",)))
    with pytest.raises(InvalidConfig):
        render(smuggled, "eth0")
    escaping = SystemSettings(time=TimeSettings("../../etc/shadow", True, ()))
    with pytest.raises(InvalidConfig, match="not a zone name"):
        render(escaping, "eth0")


@pytest.mark.parametrize("bad", ["", "eth0\n", "eth 0", "..", "a/b", "x" * 16, "eth0;id", None])
def test_interface_names(bad):
    with pytest.raises(InvalidConfig):
        check_interface(bad)
    assert check_interface("enp1s0") == "enp1s0" and check_interface("end0") == "end0"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_timesyncd_finds_the_drop_in_where_it_is_written(tmp_path):
    config = settings().updated({"time": {"ntp_servers": ["192.0.2.1", "ntp.example.org"]}})
    install_files(tmp_path, render(config, "eth0"))
    out = subprocess.run(["systemd-analyze", "cat-config", f"--root={tmp_path}",
                          "systemd/timesyncd.conf"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert f"# {tmp_path}/run/systemd/timesyncd.conf.d/50-vigil.conf" in out.stdout
    assert "NTP=192.0.2.1 ntp.example.org" in out.stdout
