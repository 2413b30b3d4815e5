"""vigil-restream.service: its command line parses, it listens on 8554 on the LAN, and it
may write its own login and nothing else."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from appliance.cli import build_parser
from appliance.restream.plan import DEFAULT_PORT

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "rootfs-overlay/etc/systemd/system/vigil-restream.service"


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    return parser["Service"]


def test_the_unit_runs_the_restream_daemon_on_port_8554_of_the_lan():
    unit = service()
    args = build_parser().parse_args(shlex.split(unit["ExecStart"])[1:])
    assert (args.command, args.action) == ("restream", "run")
    assert args.listen == "0.0.0.0" and args.port == DEFAULT_PORT == 8554
    assert args.registry == "/persist/config/cameras.json"
    assert args.secrets == "/persist/secrets/cameras"
    assert unit["ReadWritePaths"] == "-" + str(Path(args.login).parent) == "-/persist/secrets/restream"


def test_the_unit_is_unprivileged_and_notifies_with_a_watchdog():
    unit = service()
    assert unit["User"] == "vigil" and unit["CapabilityBoundingSet"] == ""
    assert unit["Type"] == "notify" and int(unit["WatchdogSec"]) > 2
    assert unit["ProtectSystem"] == "strict" and unit["NoNewPrivileges"] == "yes"
