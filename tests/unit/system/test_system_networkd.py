"""The rendered .network file, read by the real systemd-networkd.

networkd runs in a throw-away network namespace (a veth pair, nothing leaves it) and a
private mount namespace where tmpfs hides the machine's own .network files, its D-Bus
and networkd's state, and only our file sits in /run/systemd/network. /sys is read-only
in there, so networkd does not wait for udev (which the namespace does not have).

Static: networkd puts the address and the default route on the link. DHCP: a second
networkd-configured link with `DHCPServer=yes` hands out a lease and our DHCP file takes
it. Either way networkd's log must not complain about a key of ours.

Needs root, iproute2 and systemd-networkd (Debian's `systemd` package); skipped otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from appliance.system.render import NETWORK_FILE, render
from appliance.system.settings import NetworkSettings, SystemSettings
from tests.waiting import wait_until

NETWORKD = next((p for p in ("/lib/systemd/systemd-networkd", "/usr/lib/systemd/systemd-networkd")
                 if os.access(p, os.X_OK)), None)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(NETWORKD is None or shutil.which("ip") is None
                       or shutil.which("unshare") is None,
                       reason="needs systemd-networkd, iproute2 and util-linux's unshare"),
    pytest.mark.skipif(not _has_user("systemd-network"), reason="no systemd-network user"),
    pytest.mark.timeout(120),
]

# The test's own harness (fixed text, paths from the test): hide the machine's
# configuration, give networkd an empty /run of its own (a machine without systemd as
# PID 1 has no /run/systemd at all), make /sys read-only, start networkd with only the
# test's files.
HARNESS = r"""
set -e
for d in /etc/systemd/network /usr/lib/systemd/network /usr/local/lib/systemd/network; do
  if [ -d "$d" ]; then mount -t tmpfs -o mode=0755 tmpfs "$d"; fi
done
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/systemd/network /run/systemd/netif
mount -o remount,bind,ro /sys
cp "$1"/*.network /run/systemd/network/
chown systemd-network: /run/systemd/netif
exec "$2"
"""


def ip(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=30)


@pytest.fixture
def netns(tmp_path):
    name = f"vigil-nd-{os.getpid()}"
    made = ip("netns", "add", name)
    if made.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {made.stderr.strip()}")
    procs: list[subprocess.Popen] = []
    try:
        assert ip("-n", name, "link", "add", "vlan0", "type", "veth", "peer", "name",
                  "vpeer0").returncode == 0
        for link in ("lo", "vpeer0"):
            assert ip("-n", name, "link", "set", link, "up").returncode == 0

        def start(config_dir: Path) -> Path:
            log = tmp_path / "networkd.log"
            env = dict(os.environ, SYSTEMD_LOG_LEVEL="debug", SYSTEMD_LOG_TARGET="console")
            with open(log, "wb") as out:
                procs.append(subprocess.Popen(
                    ["ip", "netns", "exec", name, "unshare", "--mount", "--propagation",
                     "private", "sh", "-c", HARNESS, "harness", str(config_dir), NETWORKD],
                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    start_new_session=True))
            return log
        yield name, start
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(10)
        ip("netns", "del", name)


def addresses(ns: str, link: str) -> list[str]:
    out = ip("-n", ns, "-j", "-4", "addr", "show", "dev", link)
    data = json.loads(out.stdout or "[]")
    return [f"{a['local']}/{a['prefixlen']}" for entry in data for a in entry.get("addr_info", [])]


def default_gateway(ns: str) -> str | None:
    routes = json.loads(ip("-n", ns, "-j", "-4", "route", "show", "default").stdout or "[]")
    return routes[0].get("gateway") if routes else None


def complaints(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines()
            if "10-vigil-lan.network" in line and any(
                word in line for word in ("Unknown", "ignoring", "Failed", "invalid"))]


def write_network(directory: Path, settings: SystemSettings) -> None:
    directory.mkdir(exist_ok=True)
    (directory / Path(NETWORK_FILE).name).write_bytes(render(settings, "vlan0").files[NETWORK_FILE])


def test_networkd_applies_the_rendered_static_address(netns, tmp_path):
    ns, start = netns
    settings = SystemSettings("garage", network=NetworkSettings.build({
        "mode": "static", "address": "192.168.77.10/24", "gateway": "192.168.77.1",
        "dns": ["192.168.77.1", "192.168.77.2"]}))
    write_network(tmp_path / "conf", settings)
    log = start(tmp_path / "conf")
    wait_until(lambda: "192.168.77.10/24" in addresses(ns, "vlan0"), 30,
               f"networkd to set the static address (log: {log})")
    wait_until(lambda: default_gateway(ns) == "192.168.77.1", 30, "the default route")
    assert not complaints(log), complaints(log)


def test_networkd_takes_a_dhcp_lease_with_the_rendered_file(netns, tmp_path):
    ns, start = netns
    conf = tmp_path / "conf"
    write_network(conf, SystemSettings("garage").updated(
        {"time": {"ntp_servers": ["192.0.2.1"]}}))  # with UseNTP=no in [DHCPv4]
    # the other end of the veth: a DHCP server (the test's fixture, not ours)
    (conf / "20-test-dhcp-server.network").write_text(
        "[Match]\nName=vpeer0\n\n[Network]\nAddress=10.77.0.1/24\nDHCPServer=yes\n\n"
        "[DHCPServer]\nPoolOffset=100\nPoolSize=20\n")
    log = start(conf)
    pool = ipaddress.ip_network("10.77.0.0/24")

    def leased():
        return [a for a in addresses(ns, "vlan0")
                if ipaddress.ip_interface(a).ip in pool and not a.startswith("10.77.0.1/")]
    wait_until(leased, 45, f"a DHCP lease on vlan0 (log: {log})")
    assert not complaints(log), complaints(log)
