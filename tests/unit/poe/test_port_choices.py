"""The owner's PoE port choices file (appliance/poe/port_choices.py): what it accepts,
how a damaged file or another board's labels are ignored with a warning rather than
stopping PoE management, and how changes merge."""

from __future__ import annotations

import json
import logging

import pytest

from appliance.core.errors import DataLoss
from appliance.poe.port_choices import PortChoices, choices_for_board, load_choices

LABELS = [f"Port {n}" for n in range(1, 9)]


def write(path, data) -> None:
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def test_no_file_means_no_choices(tmp_path):
    assert load_choices(tmp_path / "poe-ports.json") == {}
    assert choices_for_board(tmp_path / "poe-ports.json", LABELS) == {}


def test_remember_merges_fields_per_port(tmp_path):
    path = tmp_path / "config" / "poe-ports.json"
    choices = PortChoices(path)
    choices.remember("Port 3", {"enabled": False})
    choices.remember("Port 3", {"priority": "critical"})
    choices.remember("Port 1", {"priority": "low"})
    choices.remember("Port 3", {"enabled": True})
    assert load_choices(path) == {"Port 3": {"enabled": True, "priority": "critical"},
                                  "Port 1": {"priority": "low"}}
    assert json.loads(path.read_text())["format"] == 1
    assert path.stat().st_mode & 0o777 == 0o644
    with pytest.raises(ValueError):
        choices.remember("Port 1", {"enabled": "no"})
    with pytest.raises(ValueError):
        choices.remember("Port 1", {"budget_w": 5})


@pytest.mark.parametrize("content, words", [
    ("{not json", "cannot be read"),
    ([], "format 1"),
    ({"format": 2, "ports": {}}, "format 1"),
    ({"format": 1}, "damaged"),
    ({"format": 1, "ports": [], "extra": 1}, "damaged"),
    ({"format": 1, "ports": {"Port 1": {"enabled": "false"}}}, "port 'Port 1'"),
    ({"format": 1, "ports": {"Port 1": {"enabled": 0}}}, "port 'Port 1'"),
    ({"format": 1, "ports": {"Port 1": {"priority": "urgent"}}}, "priority critical/high/low"),
    ({"format": 1, "ports": {"Port 1": {"budget_w": 9}}}, "port 'Port 1'"),
    ({"format": 1, "ports": {"Port 1": {}}}, "port 'Port 1'"),
    ({"format": 1, "ports": {"Port 1": None}}, "port 'Port 1'"),
])
def test_a_damaged_file_is_named_and_ignored_as_a_whole(tmp_path, caplog, content, words):
    path = tmp_path / "poe-ports.json"
    write(path, content)
    with pytest.raises(DataLoss, match=words) as err:
        load_choices(path)
    assert str(path) in str(err.value)
    with caplog.at_level(logging.WARNING):
        assert choices_for_board(path, LABELS) == {}
    assert "[poe.ports] apply" in caplog.text
    PortChoices(path).remember("Port 2", {"enabled": False})     # replaced by a change
    assert load_choices(path) == {"Port 2": {"enabled": False}}


def test_another_boards_labels_are_ignored_with_a_warning(tmp_path, caplog):
    path = tmp_path / "poe-ports.json"
    write(path, {"format": 1, "ports": {"Port 2": {"enabled": False},
                                        "LAN 9": {"enabled": False}}})
    with caplog.at_level(logging.WARNING):
        assert choices_for_board(path, LABELS) == {"Port 2": {"enabled": False}}
    assert "'LAN 9'" in caplog.text and "does not have" in caplog.text
