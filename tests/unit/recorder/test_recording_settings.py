"""recording.json: per-camera modes and schedules, validated all-or-nothing, re-read on change."""

from __future__ import annotations

import os
from datetime import datetime, timezone

import pytest

from appliance.core.errors import DataLoss, InvalidConfig
from appliance.recorder.recording_settings import (RecordingSettingsFile, load_recording_settings,
                                                   recording_settings_path,
                                                   update_recording_settings)

NIGHT = {"timezone": "Europe/Berlin", "default": "events",
         "week": {"mon": [["08:00", "18:00", "off"]]}}


def test_update_saves_and_reads_back(tmp_path):
    path = recording_settings_path(tmp_path / "vigil.toml")
    assert path == tmp_path / "recording.json"
    assert load_recording_settings(path).camera("front").mode == "continuous"  # no file
    out = update_recording_settings(path, {"front": {"mode": "events", "pre_event_s": 4,
                                                     "post_event_s": 6},
                                           "back": {"schedule": NIGHT, "event_max_age_days": 90}})
    assert out["cameras"]["front"] == {"mode": "events", "pre_event_s": 4.0,
                                       "post_event_s": 6.0, "event_max_age_days": 0.0}
    loaded = load_recording_settings(path)
    monday_noon = datetime(2026, 6, 8, 10, 0, tzinfo=timezone.utc)
    assert loaded.camera("back").mode_at(monday_noon) == "off"
    assert loaded.camera("back").event_max_age_days == 90
    # a partial change keeps the rest; None returns a camera to the default
    update_recording_settings(path, {"front": {"post_event_s": 10}, "back": None})
    loaded = load_recording_settings(path)
    assert (loaded.camera("front").mode, loaded.camera("front").pre_event_s,
            loaded.camera("front").post_event_s) == ("events", 4.0, 10.0)
    assert "back" not in loaded.cameras


@pytest.mark.parametrize("cameras, words", [
    ({"front": {"mode": "sometimes"}}, "unknown recording mode"),
    ({"front": {"mode": "off", "schedule": NIGHT}}, "either a mode or a schedule"),
    ({"front": {"pre_event_s": -1}}, "pre_event_s: expected a number from 0 to 300"),
    ({"front": {"post_event_s": float("nan")}}, "post_event_s"),
    ({"front": {"pre_event_s": True}}, "pre_event_s"),
    ({"front": {"colour": 1}}, "unknown setting"),
    ({"../x": {"mode": "off"}}, "use 1-32 letters"),
    ({"front": {"schedule": {"week": {"mon": [["10:00", "09:00", "off"]]}}}}, "camera front"),
    ([], "must be an object"),
])
def test_bad_changes_are_refused_and_change_nothing(tmp_path, cameras, words):
    path = tmp_path / "recording.json"
    update_recording_settings(path, {"ok": {"mode": "events"}})
    before = path.read_bytes()
    # a good change beside the bad one is refused with it (all or nothing)
    change = {"ok": {"mode": "off"}, **cameras} if isinstance(cameras, dict) else cameras
    with pytest.raises(InvalidConfig, match=words):
        update_recording_settings(path, change)
    assert path.read_bytes() == before


def test_file_is_re_read_when_it_changes_and_damage_is_reported(tmp_path):
    path = tmp_path / "recording.json"
    watcher = RecordingSettingsFile(path)
    assert watcher.changed().cameras == {}          # no file: the defaults, once
    assert watcher.changed() is None
    update_recording_settings(path, {"front": {"mode": "off"}})
    assert watcher.changed().camera("front").mode == "off"
    assert watcher.changed() is None
    path.write_text("{not json")
    os.utime(path, ns=(1, 1))
    with pytest.raises(DataLoss, match="cannot be read"):
        watcher.changed()
    assert watcher.changed() is None                # reported once until it changes again
