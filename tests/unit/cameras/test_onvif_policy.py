"""The address policy (SSRF guard): a table of addresses the box may and may not contact."""

from __future__ import annotations

import ipaddress
import time

import pytest

from appliance.cameras.onvif.policy import (AddressPolicy, AddressRefused, literal_ip,
                                            strip_credentials)
from appliance.core.errors import InvalidConfig, Unavailable

LAN = ["192.168.1.0/24", "10.20.0.0/16", "fd00::/64"]
OWN = ["192.168.1.2", "fd00::2"]


def fake_dns(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]
    return resolve


DNS = fake_dns({"cam1.lan": ["192.168.1.20"], "rebind.lan": ["192.168.1.21", "127.0.0.1"],
                "meta.lan": ["169.254.169.254"], "v6cam.lan": ["fd00::20"]})


@pytest.fixture
def policy() -> AddressPolicy:
    return AddressPolicy(LAN, own_addresses=OWN, own_ports=[22, 80, 443, 8554], resolver=DNS)


ALLOWED = [
    ("http://192.168.1.20/onvif/device_service", "onvif", "192.168.1.20", 80),
    ("https://192.168.1.20:8443/onvif/device_service", "onvif", "192.168.1.20", 8443),
    ("HTTP://192.168.1.20:8000/", "onvif", "192.168.1.20", 8000),
    ("http://10.20.3.4/onvif/device_service", "onvif", "10.20.3.4", 80),
    ("http://[fd00::20]:8080/onvif", "onvif", "fd00::20", 8080),
    ("http://cam1.lan/onvif/device_service", "onvif", "192.168.1.20", 80),
    ("http://v6cam.lan/", "onvif", "fd00::20", 80),
    ("rtsp://192.168.1.20/Streaming/Channels/101", "stream", "192.168.1.20", 554),
    ("rtsps://192.168.1.20/stream", "stream", "192.168.1.20", 322),
    ("http://192.168.1.20/snapshot.jpg", "snapshot", "192.168.1.20", 80),
    # the box's own address, but not one of its service ports
    ("http://192.168.1.2:8080/", "onvif", "192.168.1.2", 8080),
]

REFUSED = [
    ("http://127.0.0.1:8080/onvif/device_service", "onvif", "loopback"),
    ("http://[::1]/", "onvif", "loopback"),
    ("http://localhost/", "onvif", "does not resolve"),   # not in our fake DNS: Unavailable
    ("http://2130706433/", "onvif", "loopback"),           # decimal 127.0.0.1
    ("http://0x7f.1/", "onvif", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "onvif", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "onvif", "link-local"),
    ("http://[fe80::1%25eth0]/", "onvif", "link-local"),
    ("http://meta.lan/", "onvif", "link-local"),
    ("http://100.100.100.200/", "onvif", "metadata"),
    ("http://224.0.0.1/", "onvif", "multicast"),
    ("http://239.255.255.250:3702/", "onvif", "multicast"),
    ("http://0.0.0.0/", "onvif", "unspecified"),
    ("http://[::]/", "onvif", "unspecified"),
    ("http://255.255.255.255/", "onvif", "broadcast"),
    ("http://192.168.1.255/", "onvif", "broadcast or network address"),
    ("http://192.168.1.0/", "onvif", "broadcast or network address"),
    ("http://240.0.0.1/", "onvif", "reserved"),
    ("http://8.8.8.8/", "onvif", "outside the allowed camera networks"),
    ("http://192.168.2.20/", "onvif", "outside the allowed camera networks"),
    ("http://192.168.1.2/", "onvif", "own services"),
    ("http://192.168.1.2:443/", "onvif", "own services"),
    ("rtsp://192.168.1.2:8554/cam1", "stream", "own services"),
    ("http://rebind.lan/", "onvif", "loopback"),          # one bad answer refuses the name
    ("file:///etc/passwd", "onvif", "only http:// or https://"),
    ("gopher://192.168.1.20:70/_x", "onvif", "only http:// or https://"),
    ("ftp://192.168.1.20/", "onvif", "only http:// or https://"),
    ("rtsp://192.168.1.20/", "onvif", "only http:// or https://"),
    ("http://192.168.1.20/", "stream", "only rtsp:// or rtsps://"),
    ("exec:ls", "stream", "only rtsp:// or rtsps://"),
    ("//192.168.1.20/", "onvif", "only http:// or https://"),
    ("http://admin:secret@192.168.1.20/", "onvif", "user name or password"),
    ("http://192.168.1.20 /", "onvif", "spaces"),
    ("http://192.168.1.20/\r\nHost: evil", "onvif", "control characters"),
    ("http://192.168.1.20\\@evil/", "onvif", "backslashes"),
    ("http:///onvif", "onvif", "no host"),
    ("http://192.168.1.20:99999/", "onvif", "invalid port"),
    ("http://bad_host!/", "onvif", "not a valid host name"),
    ("", "onvif", "empty"),
    ("http://192.168.1.20/" + "a" * 3000, "onvif", "longer than"),
]


@pytest.mark.parametrize("url,kind,ip,port", ALLOWED)
def test_allowed(policy, url, kind, ip, port):
    target = policy.check_url(url, kind)
    assert target.ip == ipaddress.ip_address(ip)
    assert target.port == port
    assert target.path.startswith("/")


@pytest.mark.parametrize("url,kind,reason", REFUSED)
def test_refused(policy, url, kind, reason):
    with pytest.raises((AddressRefused, Unavailable)) as info:
        policy.check_url(url, kind)
    assert reason in str(info.value)
    assert "secret" not in str(info.value)   # credentials never end up in a message


def test_refusals_are_invalid_config_errors(policy):
    with pytest.raises(InvalidConfig):
        policy.check_url("http://169.254.169.254/", "onvif")


def test_loopback_only_when_named_explicitly():
    everything = AddressPolicy(["0.0.0.0/0", "::/0"], resolver=DNS)
    assert "loopback" in everything.url_refusal("http://127.0.0.1:8080/")
    assert "loopback" in everything.url_refusal("http://[::1]:8080/")
    assert everything.url_refusal("http://8.8.8.8/") is None   # the owner's choice
    assert "link-local" in everything.url_refusal("http://169.254.169.254/")

    namespace = AddressPolicy(["127.0.0.0/8"], resolver=DNS)
    assert str(namespace.check_url("http://127.0.0.1:8080/onvif").ip) == "127.0.0.1"
    # loopback counts as the box's own address: its service ports stay refused
    assert "own services" in namespace.url_refusal("http://127.0.0.1:443/")
    only_two = AddressPolicy(["127.0.0.2/32"], resolver=DNS)
    assert only_two.url_refusal("http://127.0.0.2:8080/") is None
    assert "loopback" in only_two.url_refusal("http://127.0.0.1:8080/")


@pytest.mark.parametrize("network", ["169.254.0.0/16", "fe80::/10", "224.0.0.0/4",
                                     "0.0.0.0/32"])
def test_networks_that_cannot_be_allowed(network):
    with pytest.raises(InvalidConfig, match="cannot be an allowed camera network"):
        AddressPolicy([network])


def test_bad_network_text():
    with pytest.raises(InvalidConfig, match="CIDR"):
        AddressPolicy(["192.168.1.0/33"])


def test_unresolvable_and_slow_names():
    def slow(host: str, port: int) -> list[str]:
        time.sleep(2)
        return ["192.168.1.20"]

    with pytest.raises(Unavailable, match="did not resolve within 0.2 s"):
        start = time.monotonic()
        AddressPolicy(LAN, resolver=slow).check_url("http://cam.lan/", resolve_timeout=0.2)
    assert time.monotonic() - start < 1.0
    with pytest.raises(Unavailable, match="does not resolve"):
        AddressPolicy(LAN, resolver=DNS).check_url("http://nowhere.lan/")


def test_url_refusal_does_not_resolve_names(policy):
    calls = []

    def counting(host: str, port: int) -> list[str]:
        calls.append(host)
        return ["127.0.0.1"]

    counted = AddressPolicy(LAN, resolver=counting)
    assert counted.url_refusal("http://cam.lan/") is None   # checked later, at fetch time
    assert calls == []
    with pytest.raises(AddressRefused):
        counted.check_url("http://cam.lan/")
    assert calls == ["cam.lan"]


def test_check_host_for_unicast_discovery(policy):
    assert str(policy.check_host("192.168.1.20", 3702)) == "192.168.1.20"
    assert str(policy.check_host("cam1.lan", 3702)) == "192.168.1.20"
    with pytest.raises(AddressRefused, match="loopback"):
        policy.check_host("127.0.0.1", 3702)
    with pytest.raises(AddressRefused, match="multicast"):
        policy.check_host("239.255.255.250", 3702)


def test_target_keeps_host_name_for_host_header(policy):
    target = policy.check_url("http://cam1.lan:8080/onvif/device_service?x=1")
    assert (target.host, str(target.ip), target.netloc, target.path) == \
        ("cam1.lan", "192.168.1.20", "cam1.lan:8080", "/onvif/device_service?x=1")


@pytest.mark.parametrize("url,expected", [
    ("rtsp://admin:pa%40ss@192.168.1.20:554/ch1", "rtsp://192.168.1.20:554/ch1"),
    ("rtsp://admin@192.168.1.20/ch1", "rtsp://192.168.1.20/ch1"),
    ("rtsp://a:b@c@192.168.1.20/x", "rtsp://192.168.1.20/x"),
    ("rtsp://192.168.1.20/x?user=a", "rtsp://192.168.1.20/x?user=a"),
])
def test_strip_credentials(url, expected):
    assert strip_credentials(url) == expected


@pytest.mark.parametrize("host,ip", [("127.1", "127.0.0.1"), ("0x7f000001", "127.0.0.1"),
                                     ("3232235796", "192.168.1.20"), ("cafe.be", None),
                                     ("cam1", None), ("[::1]", None), ("::1", "::1")])
def test_literal_ip(host, ip):
    found = literal_ip(host)
    assert (str(found) if found else None) == ip


def test_for_this_host_knows_its_own_addresses():
    policy = AddressPolicy.for_this_host(["127.0.0.0/8"])
    assert any(ip.is_loopback for ip in policy.own_addresses)
    assert "own services" in policy.url_refusal("http://127.0.0.1:80/")
