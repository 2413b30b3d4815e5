"""Alerts through the web API: one list, newest first, from the two places they are kept.

* the recorder's index (`alerts` table: retention, licence, recording), read-only;
* vigil-hwd's alert log (storage, SMART, RAID, PoE; JSON lines in its state directory),
  read through appliance.storage.monitor.read_alerts.

Neither store has ids that survive for the web, or a "cleared" flag, so:
* ids are "r<row id>" for the index and "h<hash of the line>" for hwd's log (a line
  never changes once written, so its hash is stable);
* a warning or critical alert is *active* until a later info alert from the same source
  says the condition ended (the monitors and the retention worker emit one: "healthy
  again", "mounted again", "runs again"); info alerts need no action and count as
  cleared. A source that raises two different conditions (retention) clears both with
  the first "ended" message: docs/design/storage.md lists this caveat;
* acknowledging is the web's own record (who saw it, when), kept in the accounts
  database next to the audit log; the stores of the other daemons are never written.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path

from flask import Blueprint, abort, current_app, g, jsonify, request

from appliance.core.errors import DataLoss, InvalidConfig
from appliance.recorder.index import RecordingIndex
from appliance.storage.alerts import SEVERITIES
from appliance.storage.monitor import read_alerts
from appliance.web.security import accounts, client_address, require_role
from appliance.web.services import paths

alerts = Blueprint("alerts", __name__)

LIMIT_DEFAULT, LIMIT_MAX = 200, 1000
READ_MAX = 2000
ALERT_ID = re.compile(r"^(r\d{1,18}|h[0-9a-f]{16})$")
RANK = {name: i for i, name in enumerate(SEVERITIES)}


def _recorder_alerts() -> list[dict]:
    """The index's alerts; none, and `g.recorder_alerts_error` says why, when the index
    cannot be read (a data disk pulled out or failing: hwd's alerts about it must still
    be listed)."""
    try:
        index = RecordingIndex(Path(current_app.config["VIGIL_DATA_DIR"]), readonly=True)
    except DataLoss:
        return []  # nothing recorded yet
    except (sqlite3.Error, OSError) as exc:
        g.recorder_alerts_error = f"the recorder's alerts cannot be read: {exc}"
        return []
    try:
        rows = index.alerts()[-READ_MAX:]
    except (sqlite3.Error, OSError) as exc:
        g.recorder_alerts_error = f"the recorder's alerts cannot be read: {exc}"
        return []
    finally:
        index.close()
    return [{"id": f"r{row['id']}", "time": row["time_us"] / 1e6, "severity": row["severity"],
             "source": row["source"], "text": row["message"], "origin": "recorder"}
            for row in rows]


def _hwd_alerts() -> list[dict]:
    state = paths().hwd_state
    if state is None:
        return []
    out = []
    for entry in read_alerts(Path(state), READ_MAX):
        line = json.dumps(entry, sort_keys=True).encode()
        try:
            out.append({"id": "h" + hashlib.sha256(line).hexdigest()[:16],
                        "time": float(entry["time"]), "severity": str(entry["severity"]),
                        "source": str(entry["source"]), "text": str(entry["message"]),
                        "origin": "vigil-hwd"})
        except (KeyError, TypeError, ValueError):
            continue  # a line from another version: skip it, not the whole list
    return out


def merged_alerts() -> list[dict]:
    """Every alert, newest first, with its state and acknowledgement."""
    items = sorted(_recorder_alerts() + _hwd_alerts(), key=lambda a: a["time"])
    cleared_after: dict[str, float] = {}
    for item in items:
        if item["severity"] == "info":
            cleared_after[item["source"]] = item["time"]
    acks = accounts().alert_acknowledgements()
    for item in items:
        ended = cleared_after.get(item["source"])
        item["state"] = ("cleared" if item["severity"] == "info" or
                         (ended is not None and ended >= item["time"]) else "active")
        item["acknowledged"] = acks.get(item["id"])
    items.reverse()
    return items


@alerts.get("/alerts")
@require_role("operator")
def list_alerts():
    """?severity= (info, warning, critical: that one and worse), ?state= (active, cleared),
    ?limit= (1-1000, default 200)."""
    severity = request.args.get("severity", "info")
    if severity not in RANK:
        raise InvalidConfig(f"`severity` must be one of {', '.join(SEVERITIES)}")
    state = request.args.get("state", "")
    if state not in ("", "active", "cleared"):
        raise InvalidConfig("`state` must be active or cleared")
    text = request.args.get("limit", str(LIMIT_DEFAULT))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= LIMIT_MAX:
        raise InvalidConfig(f"`limit` must be a whole number from 1 to {LIMIT_MAX}")
    items = [a for a in merged_alerts()
             if RANK.get(a["severity"], 0) >= RANK[severity] and (not state or
                                                                  a["state"] == state)]
    active = sum(1 for a in items if a["state"] == "active" and not a["acknowledged"])
    return jsonify(alerts=items[:int(text)], active_unacknowledged=active,
                   hwd_log=paths().hwd_state is not None,
                   recorder_error=g.get("recorder_alerts_error", ""))


@alerts.post("/alerts/<name>/acknowledge")
@require_role("operator")
def acknowledge(name: str):
    if not ALERT_ID.match(name):
        abort(404)
    found = next((a for a in merged_alerts() if a["id"] == name), None)
    if found is None:
        abort(404)
    who = g.session.user.username
    if accounts().acknowledge_alert(name, who):
        accounts().audit(who, "alert_acknowledged",
                         f"{name} [{found['severity']}] {found['source']}: {found['text']}",
                         client_address())
    return jsonify(id=name, acknowledged=accounts().alert_acknowledgements().get(name))
