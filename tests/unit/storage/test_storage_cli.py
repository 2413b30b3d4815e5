"""`nvr health`, `nvr protect`, `nvr deletions`, `nvr retention approve` on a real index."""

from __future__ import annotations

import json

from appliance.cli import main
from appliance.recorder.index import RecordingIndex, Segment
from appliance.storage.retention.worker import APPROVAL_KEY
from appliance.storage.volume import write_marker

NOW = 1_800_000_000 * 1_000_000


def seed(data):
    index = RecordingIndex(data)
    for i in range(3):
        index.add_segment(Segment("door", i + 1, NOW + i * 60_000_000, NOW + (i + 1) * 60_000_000,
                                  1000, f"recordings/door/x/{i}.mp4"))
    index.close()


def test_health_json_reports_the_volume_and_each_camera(tmp_path, capsys):
    write_marker(tmp_path)
    seed(tmp_path)
    assert main(["health", "--data", str(tmp_path), "--no-devices", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["volume_ok"] is True and report["data"]["total_bytes"] > 0
    door = report["cameras"]["door"]
    assert door["bytes_held"] == 3000 and door["retained_days"] > 0
    assert door["bytes_per_day"] is not None and door["limited_by"] == "disk"


def test_health_says_when_the_directory_is_not_a_data_disk(tmp_path, capsys):
    assert main(["health", "--data", str(tmp_path), "--no-devices", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["volume_ok"] is False and "not on an initialised" in report["data"]["volume"]
    assert main(["health", "--data", str(tmp_path), "--no-devices"]) == 0
    assert "NOT USABLE" in capsys.readouterr().out


def test_protect_list_remove_and_bad_times(tmp_path, capsys):
    seed(tmp_path)
    base = ["protect", "--data", str(tmp_path)]
    assert main(base + ["--camera", "door", "--from", "2027-01-15T08:00:00+00:00",
                        "--to", "2027-01-15T09:00:00+00:00", "--reason", "case 1", "--json"]) == 0
    pid = json.loads(capsys.readouterr().out)["id"]
    assert main(base + ["--list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["protections"]
    assert [(r["id"], r["camera"], r["reason"]) for r in rows] == [(pid, "door", "case 1")]
    assert rows[0]["start"].startswith("2027-01-15T08:00:00")
    assert main(base + ["--from", "yesterday", "--to", "2027-01-15T09:00:00"]) == 2
    assert "not an ISO 8601 time" in capsys.readouterr().err
    assert main(base + ["--from", "2027-01-15T09:00", "--to", "2027-01-15T08:00"]) == 2
    assert "--to must be after --from" in capsys.readouterr().err
    assert main(base + ["--remove", str(pid)]) == 0
    assert main(base + ["--remove", str(pid)]) == 2
    assert "no protection with id" in capsys.readouterr().err


def test_deletions_and_approve(tmp_path, capsys):
    seed(tmp_path)
    index = RecordingIndex(tmp_path)
    seg = index.segments()[0]
    index.finish_deletion(index.begin_deletion(seg, "max_age", "older than 1 days", NOW), seg.path)
    index.close()
    assert main(["deletions", "--data", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["deletions"]
    assert [(r["path"], r["rule"], r["state"]) for r in rows] == [(seg.path, "max_age", "done")]
    assert main(["retention", "approve", "--data", str(tmp_path)]) == 0
    index = RecordingIndex(tmp_path)
    assert index.get_meta(APPROVAL_KEY) == "1"
    index.close()
