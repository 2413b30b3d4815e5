"""The health gate: an update is kept only if the box does its job afterwards.

After a trial boot into a new release, vigil-update waits (within a time limit) until:
the recorder service runs, the data disk is mounted again if one was before, the web UI
answers, and every camera that recorded before the update has written at least one
durable fragment since this boot. Any check still failing at the limit, or the recorder
failing to start again and again, fails the gate, and the update is rolled back.

The probes are an interface so the gate's rules are tested without a machine; the real
ones ask systemd, the mount table, the web server and the recording index.
"""

from __future__ import annotations

import http.client
import logging
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from appliance.core.commands import Runner, run_command
from appliance.update.store import Pending

log = logging.getLogger(__name__)

RECORDER_UNIT = "vigil-recorder.service"
RECORDER_GIVE_UP_RESTARTS = 5    # systemd restarted it this often: it will not start


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class CameraProgress:
    state: str
    heartbeat_us: int
    fragments: int


class Probes(Protocol):
    def recorder(self) -> tuple[str, int]:
        """(systemd ActiveState, NRestarts) of the recorder service."""

    def storage_mounted(self) -> bool: ...

    def web_answers(self) -> tuple[bool, str]: ...

    def cameras(self) -> dict[str, CameraProgress]:
        """Each camera's status row in the recording index (empty without a disk)."""


def evaluate(pending: Pending, probes: Probes, since_us: int) -> tuple[list[Check], bool]:
    """The checks now, and whether failing is already certain (no point waiting)."""
    checks, hopeless = [], False
    state, restarts = probes.recorder()
    if restarts >= RECORDER_GIVE_UP_RESTARTS:
        hopeless = True
        checks.append(Check("recorder", False, f"the recorder failed to start {restarts} times"))
    else:
        checks.append(Check("recorder", state == "active", f"recorder service {state}"))
    if pending.storage_mounted:
        mounted = probes.storage_mounted()
        checks.append(Check("storage", mounted, "data disk mounted" if mounted
                            else "the data disk is not mounted"))
    ok, detail = probes.web_answers()
    checks.append(Check("web", ok, detail))
    seen = probes.cameras()
    for camera in pending.cameras:
        progress = seen.get(camera)
        if progress is None:
            checks.append(Check(f"camera {camera}", False, f"camera {camera} not started by the recorder"))
        elif progress.heartbeat_us < since_us or progress.fragments <= 0:
            checks.append(Check(f"camera {camera}", False,
                                f"camera {camera} not recording since the update ({progress.state})"))
        else:
            checks.append(Check(f"camera {camera}", True,
                                f"camera {camera} recording ({progress.fragments} fragments since the update)"))
    return checks, hopeless


def failures(checks: list[Check]) -> str:
    return "; ".join(check.detail for check in checks if not check.ok)


def wait_until_healthy(pending: Pending, probes: Probes, since_us: int, limit: float,
                       interval: float = 5.0, clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], None] = time.sleep) -> tuple[bool, list[Check]]:
    """Poll the checks until all pass (True), or the limit passes or failure is certain."""
    deadline = clock() + limit
    while True:
        checks, hopeless = evaluate(pending, probes, since_us)
        if all(check.ok for check in checks):
            return True, checks
        if hopeless or clock() >= deadline:
            return False, checks
        log.info("health gate waiting: %s", failures(checks))
        sleep(min(interval, max(0.0, deadline - clock())))


class SystemProbes:
    """The real box: systemd, the mount table, the HTTPS port, the recording index."""

    def __init__(self, data_dir: Path = Path("/srv/vigil/data"), mount_point: Path = Path("/srv/vigil"),
                 web_port: int = 443, runner: Runner = run_command) -> None:
        self.data_dir = data_dir
        self.mount_point = mount_point
        self.web_port = web_port
        self.run = runner

    def recorder(self) -> tuple[str, int]:
        result = self.run(["systemctl", "show", "-p", "ActiveState,NRestarts", RECORDER_UNIT], timeout=30)
        values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        restarts = values.get("NRestarts", "0")
        return values.get("ActiveState", "unknown"), int(restarts) if restarts.isdigit() else 0

    def storage_mounted(self) -> bool:
        return os.path.ismount(self.mount_point)

    def web_answers(self) -> tuple[bool, str]:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE   # the box's own certificate, on loopback
        connection = http.client.HTTPSConnection("127.0.0.1", self.web_port, timeout=10, context=context)
        try:
            connection.request("GET", "/")
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return False, f"the web UI does not answer ({exc})"
        finally:
            connection.close()
        return status < 500, f"the web UI answers ({status})"

    def cameras(self) -> dict[str, CameraProgress]:
        from appliance.recorder.index import RecordingIndex

        if not (self.data_dir / "index.sqlite3").exists():
            return {}
        index = RecordingIndex(self.data_dir, readonly=True)
        try:
            rows = index.statuses()
        except Exception as exc:   # noqa: BLE001  (a damaged index fails the cameras' checks)
            log.warning("recording index unreadable for the health gate: %s", exc)
            return {}
        finally:
            index.close()
        return {name: CameraProgress(str(row.get("state", "")), int(row.get("heartbeat_us", 0)),
                                     int(row.get("fragments", 0) or 0)) for name, row in rows.items()}
