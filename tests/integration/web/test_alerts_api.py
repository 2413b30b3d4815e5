"""The alerts API on the real app: one list from the recorder's index and vigil-hwd's
alert log (written by their own code), newest first, active until the same source says
the condition ended, filters, and acknowledgement by operators (audited)."""

from __future__ import annotations

import pytest

from appliance.recorder.index import RecordingIndex
from appliance.storage.alerts import Alert
from appliance.storage.monitor import ALERTS_NAME, AlertLog
from tests.integration.web.test_storage_api import NOW_US, Site, running_sites

T0 = NOW_US / 1e6


def hwd_log(s: Site, at: float, *alerts: Alert) -> None:
    """Append to vigil-hwd's alert log with its own AlertLog, stamped `at`."""
    AlertLog(s.state / ALERTS_NAME, _Wall(at)).add(list(alerts))


class _Wall:
    """The clock AlertLog stamps entries with (only `wall` is read)."""

    def __init__(self, at: float) -> None:
        self.at = at

    def wall(self) -> float:
        return self.at


@pytest.fixture
def site(tmp_path):
    with running_sites(tmp_path) as start:
        yield start


@pytest.fixture
def alerting(site):
    s = site()
    index = RecordingIndex(s.data)
    index.add_alert(int((T0 + 10) * 1e6), "critical", "licence",
                    "the licence allows 4 cameras: not recording cam5")
    index.add_alert(int((T0 + 40) * 1e6), "warning", "retention",
                    "camera door will keep only 2.0 days of footage")
    index.close()
    hwd_log(s, T0 + 20, Alert("critical", "raid:md0", "md0 is degraded: sdb1 failed",
                              "raid:md0:state:degraded"))
    hwd_log(s, T0 + 30, Alert("info", "raid:md0", "md0 is healthy again", "raid:md0:state:ok"))
    hwd_log(s, T0 + 50, Alert("critical", "disk:WD-123", "Data disk WD (serial WD-123) was "
                              "removed: recording has stopped. Reconnect it.", "disk-missing"))
    return s


def test_one_list_newest_first_with_state(alerting):
    status, answer = alerting.admin.json("GET", "/api/v1/alerts")
    assert status == 200, answer
    rows = [(a["time"] - T0, a["severity"], a["source"], a["state"], a["origin"])
            for a in answer["alerts"]]
    assert rows == [(50, "critical", "disk:WD-123", "active", "vigil-hwd"),
                    (40, "warning", "retention", "active", "recorder"),
                    (30, "info", "raid:md0", "cleared", "vigil-hwd"),
                    (20, "critical", "raid:md0", "cleared", "vigil-hwd"),
                    (10, "critical", "licence", "active", "recorder")]
    assert answer["active_unacknowledged"] == 3
    ids = [a["id"] for a in answer["alerts"]]
    assert len(set(ids)) == 5 and ids == [a["id"] for a in
                                          alerting.admin.json("GET", "/api/v1/alerts")[1]["alerts"]]


def test_filters(alerting):
    critical = alerting.admin.json("GET", "/api/v1/alerts?severity=critical")[1]["alerts"]
    assert [a["source"] for a in critical] == ["disk:WD-123", "raid:md0", "licence"]
    warnings = alerting.admin.json("GET", "/api/v1/alerts?severity=warning&state=active")[1]
    assert [a["source"] for a in warnings["alerts"]] == ["disk:WD-123", "retention", "licence"]
    assert len(alerting.admin.json("GET", "/api/v1/alerts?limit=2")[1]["alerts"]) == 2
    for query in ("severity=panic", "state=open", "limit=0", "limit=1001", "limit=x",
                  "severity=%3Cscript%3E"):
        status, answer = alerting.admin.json("GET", f"/api/v1/alerts?{query}")
        assert status == 400 and answer["error"], query


def test_operators_acknowledge_viewers_cannot(alerting):
    operator = alerting.user("guard", "operator")
    viewer = alerting.user("watcher", "viewer", ["door"])
    assert viewer.json("GET", "/api/v1/alerts")[0] == 403
    alerts = operator.json("GET", "/api/v1/alerts")[1]["alerts"]
    disk = alerts[0]
    assert viewer.json("POST", f"/api/v1/alerts/{disk['id']}/acknowledge", {})[0] == 403
    status, answer = operator.json("POST", f"/api/v1/alerts/{disk['id']}/acknowledge", {})
    assert status == 200 and answer["acknowledged"]["by"] == "guard"
    assert operator.json("POST", f"/api/v1/alerts/{disk['id']}/acknowledge", {})[0] == 200
    [entry] = alerting.audit("alert_acknowledged")
    assert entry["who"] == "guard" and "disk:WD-123" in entry["detail"]
    after = alerting.admin.json("GET", "/api/v1/alerts")[1]
    assert after["alerts"][0]["acknowledged"]["by"] == "guard"
    assert after["active_unacknowledged"] == 2
    for bad in ("h0000000000000000", "r999", "..%2F..%2Fetc", "%3Cscript%3E", "x" * 10_000):
        assert operator.json("POST", f"/api/v1/alerts/{bad}/acknowledge", {})[0] == 404, bad
    assert len(alerting.audit("alert_acknowledged")) == 1


def test_a_condition_raised_again_after_it_ended_is_active(alerting):
    hwd_log(alerting, T0 + 60, Alert("critical", "raid:md0", "md0 is degraded again", "k"))
    rows = alerting.admin.json("GET", "/api/v1/alerts")[1]["alerts"]
    states = {(a["time"] - T0): a["state"] for a in rows if a["source"] == "raid:md0"}
    assert states == {60: "active", 30: "cleared", 20: "cleared"}


def test_without_hwd_only_the_recorders_alerts(site):
    s = site(hwd=False)
    s.app.config["VIGIL_PATHS"] = type(s.app.config["VIGIL_PATHS"])()
    index = RecordingIndex(s.data)
    index.add_alert(int(T0 * 1e6), "warning", "retention", "x")
    index.close()
    status, answer = s.admin.json("GET", "/api/v1/alerts")
    assert status == 200 and [a["origin"] for a in answer["alerts"]] == ["recorder"]
    assert answer["hwd_log"] is False


# --- the data disk pulled out or failing -----------------------------------------------

def spoil_index(s: Site) -> None:
    """What a dying disk gives sqlite: bytes that are not a database."""
    (s.data / "index.sqlite3").write_bytes(b"\xde\xad" * 4096)
    for suffix in ("-wal", "-shm"):
        (s.data / f"index.sqlite3{suffix}").unlink(missing_ok=True)


def test_hwd_alerts_are_listed_when_the_recorders_index_cannot_be_read(alerting):
    """The disk holding the index is gone: hwd's alert saying so must still be seen
    (tests/image/test_image_usb_data_disk.py found a 500 here on a real unplug)."""
    spoil_index(alerting)
    status, answer = alerting.admin.json("GET", "/api/v1/alerts")
    assert status == 200, answer
    assert [a["origin"] for a in answer["alerts"]] == ["vigil-hwd"] * 3
    assert "was removed" in answer["alerts"][0]["text"]
    assert answer["recorder_error"].startswith("the recorder's alerts cannot be read")


def test_other_reads_of_an_unreadable_index_are_a_503_with_the_reason(alerting):
    spoil_index(alerting)
    status, answer = alerting.admin.json("GET", "/api/v1/cameras/door/timeline")
    assert status == 503, answer
    assert "the data disk may be missing or failing" in answer["error"]
