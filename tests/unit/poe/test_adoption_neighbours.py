"""The camera network's neighbour table and DHCP leases as PoE adoption reads them:
iproute2's JSON, /proc/net/arp, dnsmasq's lease file; bad input is skipped, not trusted."""

from __future__ import annotations

import subprocess

import pytest

from appliance.core.errors import Unavailable
from appliance.poe.neighbours import (Lease, LeaseFile, MemoryNeighbours, Neighbour,
                                      NeighbourTable, normal_mac, parse_dnsmasq_leases,
                                      parse_ip_neigh_json, parse_proc_net_arp)

# `ip -j neigh show dev eth1` (iproute2 6.1): no "dev" key with a dev filter; FAILED and
# INCOMPLETE entries have no lladdr; IPv6 entries alongside.
IP_JSON = (
    '[{"dst":"10.77.0.23","lladdr":"bc:ad:28:0a:1b:2c","state":["REACHABLE"]},'
    '{"dst":"10.77.0.24","lladdr":"02:00:00:00:00:24","state":["STALE"]},'
    '{"dst":"10.77.0.25","state":["FAILED"]},'
    '{"dst":"10.77.0.26","state":["INCOMPLETE"]},'
    '{"dst":"fe80::bead:28ff:fe0a:1b2c","lladdr":"bc:ad:28:0a:1b:2c","router":null,'
    '"state":["DELAY"]},'
    '{"dst":"10.77.0.27","lladdr":"01:00:5e:00:00:fb","state":["NOARP"]},'
    '{"dst":"not an address","lladdr":"02:00:00:00:00:99","state":["REACHABLE"]},'
    '"junk", {"dst":"10.77.0.28","lladdr":"02:00:00:00:00:28","state":["PERMANENT"]}]')

PROC_ARP = """IP address       HW type     Flags       HW address            Mask     Device
10.77.0.23       0x1         0x2         bc:ad:28:0a:1b:2c     *        eth1
10.77.0.25       0x1         0x0         00:00:00:00:00:00     *        eth1
10.77.0.28       0x1         0x6         02:00:00:00:00:28     *        eth1
192.168.1.1      0x1         0x2         02:fc:00:00:00:05     *        eth0
garbage line
"""

LEASES = """1800043200 bc:ad:28:0a:1b:2c 10.77.0.23 IPC-Front 01:bc:ad:28:0a:1b:2c
0 02:00:00:00:00:24 10.77.0.24 * *
duid 00:01:00:01:2c:9a:7b:1e:02:00:00:00:00:01
1800043200 1 fd00::23 * 00:04:aa
notanumber 02:00:00:00:00:25 10.77.0.25 * *
1800043200 ff:ff:ff:ff:ff:ff 10.77.0.26 * *
"""


def test_ip_json_entries_and_which_are_usable():
    found = parse_ip_neigh_json(IP_JSON)
    by_ip = {n.ip: n for n in found}
    assert by_ip["10.77.0.23"] == Neighbour("10.77.0.23", "bc:ad:28:0a:1b:2c", "REACHABLE")
    assert by_ip["10.77.0.24"].usable and by_ip["10.77.0.28"].usable
    assert not by_ip["10.77.0.25"].usable and by_ip["10.77.0.25"].mac == ""
    assert not by_ip["10.77.0.26"].usable
    assert by_ip["fe80::bead:28ff:fe0a:1b2c"].usable
    assert by_ip["10.77.0.27"].mac == "" and not by_ip["10.77.0.27"].usable   # multicast MAC
    assert "not an address" not in by_ip and len(found) == 7


def test_ip_json_that_is_not_a_list_or_too_big_is_refused():
    with pytest.raises(ValueError):
        parse_ip_neigh_json('{"dst": "10.0.0.1"}')
    with pytest.raises(ValueError):
        parse_ip_neigh_json("[" + " " * (1 << 20) + "]")


def test_proc_net_arp_for_one_interface():
    found = parse_proc_net_arp(PROC_ARP, "eth1")
    assert [(n.ip, n.mac, n.state) for n in found] == [
        ("10.77.0.23", "bc:ad:28:0a:1b:2c", "REACHABLE"),
        ("10.77.0.25", "", "INCOMPLETE"),
        ("10.77.0.28", "02:00:00:00:00:28", "PERMANENT")]


def test_dnsmasq_leases():
    assert parse_dnsmasq_leases(LEASES) == [
        Lease("bc:ad:28:0a:1b:2c", "10.77.0.23", 1800043200, "IPC-Front"),
        Lease("02:00:00:00:00:24", "10.77.0.24", 0, "")]


@pytest.mark.parametrize("text,mac", [
    ("BC-AD-28-0A-1B-2C", "bc:ad:28:0a:1b:2c"), ("bcad.280a.1b2c", "bc:ad:28:0a:1b:2c"),
    ("00:00:00:00:00:00", ""), ("ff:ff:ff:ff:ff:ff", ""), ("01:00:5e:00:00:01", ""),
    ("bc:ad:28", ""), ("", "")])
def test_mac_normalisation(text, mac):
    assert normal_mac(text) == mac


def test_the_table_reader_runs_ip_and_falls_back_to_proc(tmp_path):
    seen = []

    def run(argv, **kwargs):
        seen.append(argv)
        return subprocess.CompletedProcess(argv, 0, IP_JSON.encode(), b"")
    assert len(NeighbourTable("eth1", run=run).read()) == 7
    assert seen == [["ip", "-j", "neigh", "show", "dev", "eth1"]]

    def missing(argv, **kwargs):
        raise FileNotFoundError("ip")
    arp = tmp_path / "arp"
    arp.write_text(PROC_ARP)
    table = NeighbourTable("eth1", run=missing, arp_path=arp)
    assert [n.ip for n in table()] == ["10.77.0.23", "10.77.0.25", "10.77.0.28"]


def test_the_table_reader_says_why_it_cannot_read(tmp_path):
    def fails(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 1, b"", b'Cannot find device "eth1"\n')
    with pytest.raises(Unavailable, match="Cannot find device"):
        NeighbourTable("eth1", run=fails).read()

    def hangs(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, 2.0)
    with pytest.raises(Unavailable, match="did not answer"):
        NeighbourTable("eth1", run=hangs).read()

    def missing(argv, **kwargs):
        raise FileNotFoundError("ip")
    with pytest.raises(Unavailable, match="cannot be read"):
        NeighbourTable("eth1", run=missing, arp_path=tmp_path / "none").read()
    with pytest.raises(ValueError):
        NeighbourTable("eth1; reboot")


def test_the_real_ip_command_if_there_is_one():
    import shutil

    if shutil.which("ip") is None:
        pytest.skip("iproute2 not installed")
    with pytest.raises(Unavailable):
        NeighbourTable("vigil-none0").read()   # no such interface: said, not crashed
    lo = NeighbourTable("lo").read()
    assert all(isinstance(n, Neighbour) for n in lo)


def test_lease_file(tmp_path):
    path = tmp_path / "dnsmasq.leases"
    assert LeaseFile(path).read() == []          # dnsmasq has not written it yet
    path.write_text(LEASES)
    assert len(LeaseFile(path)()) == 2
    with pytest.raises(Unavailable):
        LeaseFile(tmp_path).read()                # not a file: said, not crashed


def test_memory_neighbours():
    net = MemoryNeighbours()
    net.add("10.77.0.23", "BC-AD-28-0A-1B-2C")
    net.fail("10.77.0.23")
    assert net() == [Neighbour("10.77.0.23", "", "FAILED")]
    net.remove("10.77.0.23")
    assert net() == []
