"""The owner's restream switch (restream.json) and `nvr restream enabled`, which the unit
asks before every start: exit 0 on, exit 1 off (systemd then skips the start without a
failure), off without a file and off for a damaged one."""

from __future__ import annotations

import configparser
import json
import shlex
from pathlib import Path

import pytest

from appliance.cli import build_parser, main
from appliance.core.errors import DataLoss, InvalidConfig
from appliance.restream.settings import (DEFAULT_SETTINGS, load_enabled, save_enabled,
                                         settings_path)

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "rootfs-overlay/etc/systemd/system/vigil-restream.service"


def enabled_exit(path: Path) -> int:
    return main(["restream", "enabled", "--settings", str(path)])


def test_off_without_a_file_and_as_saved(tmp_path):
    path = settings_path(tmp_path / "recorder.toml")
    assert path == tmp_path / "restream.json"
    assert load_enabled(path) is False
    save_enabled(path, True)
    assert load_enabled(path) is True
    assert json.loads(path.read_text()) == {"format": 1, "enabled": True}
    save_enabled(path, False)
    assert load_enabled(path) is False


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_only_true_or_false_is_saved(tmp_path, value):
    with pytest.raises(InvalidConfig, match="enabled: true or false"):
        save_enabled(tmp_path / "restream.json", value)
    assert not (tmp_path / "restream.json").exists()


@pytest.mark.parametrize("text", ['{"format": 1, "enabled": "true"}', '{"format": 1}',
                                  '{"format": 1, "enabled": true, "port": 9554}',
                                  '{"format": 2, "enabled": true}', "{not json"])
def test_a_damaged_file_is_data_loss_naming_it(tmp_path, text):
    path = tmp_path / "restream.json"
    path.write_text(text)
    with pytest.raises(DataLoss, match=str(path)):
        load_enabled(path)


def test_nvr_restream_enabled_exits_0_when_on_and_1_when_off(tmp_path, capsys):
    path = tmp_path / "restream.json"
    assert enabled_exit(path) == 1                   # no file: off
    save_enabled(path, True)
    assert enabled_exit(path) == 0
    save_enabled(path, False)
    assert enabled_exit(path) == 1
    assert "the restream is off" in capsys.readouterr().err


def test_a_damaged_switch_keeps_the_restream_off_and_says_why(tmp_path, capsys):
    path = tmp_path / "restream.json"
    path.write_text('{"format": 1, "enabled": "yes"}')
    assert enabled_exit(path) == 1
    assert f"the restream stays off: {path}" in capsys.readouterr().err


def test_the_unit_asks_the_switch_before_it_starts():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNIT)
    argv = shlex.split(parser["Service"]["ExecCondition"])
    assert argv[0] == "/opt/vigil/venv/bin/nvr"
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.action, args.settings) == ("restream", "enabled",
                                                          DEFAULT_SETTINGS)
    assert DEFAULT_SETTINGS == "/persist/config/restream.json"
