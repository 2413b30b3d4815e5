"""The units in rootfs-overlay are valid for systemd and keep the recorder's contract."""

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.cli import build_parser
from appliance.config.recorder import build_settings, load_config_file
from appliance.config.storage import build_storage_settings

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "rootfs-overlay/etc/systemd/system"
UNIT = UNITS / "vigil-recorder.service"
HWD_UNIT = UNITS / "vigil-hwd.service"


def read_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return parser


def test_recorder_unit_is_notify_with_watchdog_and_hardened():
    unit = read_unit(UNIT)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert int(service["WatchdogSec"]) > build_settings({}).progress_deadline
    assert service["Restart"] == "always"
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["ReadWritePaths"] == "/srv/vigil"


def test_recorder_unit_command_line_parses():
    argv = shlex.split(read_unit(UNIT)["Service"]["ExecStart"])
    assert argv[0].endswith("/nvr")
    args = build_parser().parse_args(argv[1:])
    assert args.command == "record" and args.data.startswith("/srv/vigil")


def test_example_config_loads():
    loaded = load_config_file(ROOT / "rootfs-overlay/etc/vigil/recorder.toml.example")
    assert build_settings(loaded.recorder).segment_seconds == 60 and loaded.cameras == []
    assert build_storage_settings(loaded.storage).allow_boot_media is False


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("path", sorted(UNITS.glob("*.service")), ids=lambda p: p.name)
def test_systemd_analyze_verify(tmp_path, path):
    # verify wants ExecStart's binary to exist; point it at a stand-in with the same name.
    text = re.sub(r"/opt/vigil/venv/bin/nvr|/usr/lib/vigil/[a-z-]+", "/bin/true", path.read_text())
    unit = tmp_path / path.name
    unit.write_text(text)
    out = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                         capture_output=True, text=True, timeout=60)
    # It exits 0 even for a bad key; what it found about our file is on stderr.
    problems = [line for line in out.stderr.splitlines() if str(unit) in line]
    assert out.returncode == 0 and not problems, out.stderr


def test_hwd_unit_command_line_parses_and_notifies():
    service = read_unit(HWD_UNIT)["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "always"
    argv = shlex.split(service["ExecStart"])
    args = build_parser().parse_args(argv[1:])
    assert args.command == "hwd" and args.volumes.startswith("/persist/config/")


WEB_UNIT = UNITS / "vigil-web.service"


def test_web_unit_serves_https_unprivileged_and_its_command_line_parses():
    service = read_unit(WEB_UNIT)["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "always"
    assert service["User"] == "vigil" and service["NoNewPrivileges"] == "yes"
    # Ports 80 and 443 through this one capability, nothing more.
    assert service["AmbientCapabilities"] == service["CapabilityBoundingSet"] == \
        "CAP_NET_BIND_SERVICE"
    assert service["ProtectSystem"] == "strict"
    writable = {p.lstrip("-") for p in service["ReadWritePaths"].split()}
    assert writable == {"/persist/config", "/persist/licence", "/persist/secrets/cameras",
                        "/persist/tls", "/persist/keys", "/srv/vigil/data"}
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/nvr")
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve" and args.listen is None  # HTTPS, not the development mode
    assert args.https_listen.endswith(":443") and args.http_listen.endswith(":80")
    assert args.tls_dir in writable and str(Path(args.accounts).parent) in writable
    assert str(Path(args.device_key).parent) in writable and args.data in writable  # exports
    assert args.hwd_socket == "/run/vigil/hwd.sock" and args.data.startswith("/srv/vigil")
