"""vigil-hwd's storage commands for the web UI and the first-boot wizard.

vigil-hwd runs as root: it can read SMART, partition and mount. The web process cannot,
so it asks over the control socket (appliance/core/control.py):

* `disks.list`: every disk with its role (boot, data, array member, in use, free), what
  would stop it from being initialised, and a SMART summary from the monitor's snapshot
  (smartctl is never run per request: that would wake sleeping disks).
* `disks.initialise {disks, mode, token}`: without a token, the plan (what is erased, the
  steps, the confirmation token: initialise.py); with the plan's token, the same plan is
  started as a background job and its id is returned at once (mkfs of a large disk takes
  longer than an HTTP request should wait). One initialise at a time.
* `disks.job {id}`: a job's progress (0-100, the step running), and its end: the new
  volume, or the error in the owner's words.
* `storage.status`: the data volumes (mounted, used and free space, hotplug state), md
  arrays with resync progress and SMART, from the monitor's snapshot.

Boot media, mounted disks and members of a running array are refused with the reason
(initialise.refusals), before any token is shown and again right before the job runs.
"""

from __future__ import annotations

import copy
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from appliance.core.commands import Runner, run_command
from appliance.core.errors import FailedPrecondition, InvalidConfig, VigilError
from appliance.storage.disks import Disk, list_disks
from appliance.storage.initialise import (DEFAULT_MOUNTPOINT, MIN_SIZE_BYTES, InitResult,
                                          complete_initialise, format_bytes, plan_initialise,
                                          refusals, run_initialise)
from appliance.storage.monitor import read_snapshot
from appliance.storage.raid import RaidMonitor
from appliance.storage.volume import find_marker, load_volumes

log = logging.getLogger(__name__)

MODES = ("single", "raid1")
JOBS_KEPT = 20
MAX_NAME = 200
SMART_COUNTERS = ("reallocated_sectors", "pending_sectors", "offline_uncorrectable",
                  "reported_uncorrectable", "udma_crc_errors", "media_errors")


@dataclass
class Job:
    """One initialise run: what the owner sees while mkfs works."""

    id: str
    kind: str
    disks: list[str]
    mode: str
    started: float
    percent: float = 0.0
    phase: str = "starting"
    step: int = 0
    steps: int = 0
    done: bool = False
    error: str = ""
    result: dict[str, Any] | None = None
    finished: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            data = {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)
                    if not f.name.startswith("_")}
        data["percent"] = round(data["percent"], 1)
        return data

    def progress(self, index: int, count: int, name: str, percent: float | None) -> None:
        with self._lock:
            self.step, self.steps, self.phase = index, count, name
            self.percent = min(99.0, ((index - 1) + (percent or 0.0) / 100) * 100 / count)

    def finish(self, result: dict[str, Any] | None, error: str = "") -> None:
        with self._lock:
            self.done, self.error, self.result = True, error, result
            self.finished = time.time()
            if not error:
                self.percent, self.phase = 100.0, "done"


def disk_role(disk: Disk, volumes: Sequence[dict[str, str]]) -> str:
    """boot, array_member, data (holds a data volume: by filesystem UUID, or mounted at a
    data volume's mount point while udev has not read the new filesystem yet), in_use, free."""
    if disk.is_boot_media:
        return "boot"
    if disk.is_raid_member:
        return "array_member"
    uuids = {v["uuid"].lower() for v in volumes}
    points = {v["mountpoint"] for v in volumes}
    if any((p.fs_uuid and p.fs_uuid.lower() in uuids) or p.mountpoint in points
           for p in disk.partitions):
        return "data"
    if disk.mountpoints or disk.holders or any(p.holders for p in disk.partitions):
        return "in_use"
    return "free"


def smart_summary(smart: dict[str, Any] | None) -> dict[str, Any] | None:
    """The figures an owner needs from a SMART reading (the full one is in the snapshot)."""
    if not smart:
        return None
    counters = smart.get("counters") or {}
    test = smart.get("self_test") or {}
    return {"verdict": smart.get("verdict", "unknown"), "overall": smart.get("overall", ""),
            "reasons": list(smart.get("reasons") or []), "message": smart.get("message", ""),
            "temperature_c": smart.get("temperature_c"),
            "temperature_level": smart.get("temperature_level", ""),
            "power_on_hours": smart.get("power_on_hours"),
            "power_cycles": smart.get("power_cycles"),
            "counters": {k: counters[k] for k in SMART_COUNTERS if k in counters},
            "self_test": ({"kind": test.get("kind"), "status": test.get("status"),
                           "passed": test.get("passed")} if test else None),
            "percentage_used": (smart.get("nvme") or {}).get("percentage_used")}


class DiskControl:
    """The handlers and their state (the jobs). One instance per vigil-hwd."""

    def __init__(self, volumes_path: Path, state_dir: Path | None = None, *,
                 mountpoint: str = DEFAULT_MOUNTPOINT, min_size_bytes: int = MIN_SIZE_BYTES,
                 include_virtual: bool = False,
                 inventory: Callable[[], Sequence[Disk]] | None = None,
                 snapshot: Callable[[], dict[str, Any] | None] | None = None,
                 raid: RaidMonitor | None = None, runner: Runner = run_command,
                 on_initialised: Callable[[InitResult], None] | None = None) -> None:
        self.volumes_path = Path(volumes_path)
        self.mountpoint = mountpoint
        self.min_size_bytes = min_size_bytes
        self.inventory = inventory or (lambda: list_disks(include_virtual=include_virtual))
        self.snapshot = snapshot or ((lambda: read_snapshot(state_dir)) if state_dir
                                     else (lambda: None))
        self.raid = raid or RaidMonitor()
        self.runner = runner
        self.on_initialised = on_initialised
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {"disks.list": self.disks, "disks.initialise": self.initialise,
                "disks.job": self.job, "storage.status": self.status}

    # --- disks.list -------------------------------------------------------------------------
    def disks(self, args: dict[str, Any]) -> dict[str, Any]:
        volumes = load_volumes(self.volumes_path)
        smart = (self.snapshot() or {}).get("smart") or {}
        disks = []
        for disk in self.inventory():
            refused = refusals(disk, self.min_size_bytes)
            role = disk_role(disk, volumes)
            warnings = (["this disk holds the box's data volume: initialising it erases the "
                         "recordings on it"] if role == "data" else [])
            disks.append({
                "device": disk.device_node, "name": disk.name, "model": disk.model,
                "vendor": disk.vendor, "serial": disk.serial, "wwn": disk.wwn,
                "identity": disk.identity, "label": disk.label, "bus": disk.bus,
                "size_bytes": disk.size_bytes, "size": format_bytes(disk.size_bytes),
                "role": role, "mountpoints": list(disk.mountpoints),
                "arrays": sorted(set(disk.md_holders)), "removable": disk.removable,
                "partitions": [{"device": p.device_node, "fs_type": p.fs_type,
                                "fs_label": p.fs_label, "mountpoint": p.mountpoint,
                                "size_bytes": p.size_bytes} for p in disk.partitions],
                "can_initialise": not refused, "refused": refused, "warnings": warnings,
                "smart": smart_summary(smart.get(disk.device_node)),
            })
        return {"disks": disks, "min_size_bytes": self.min_size_bytes,
                "mountpoint": self.mountpoint}

    # --- disks.initialise -------------------------------------------------------------------
    def initialise(self, args: dict[str, Any]) -> dict[str, Any]:
        wanted, mode, token = _initialise_args(args)
        inventory = list(self.inventory())
        chosen = [_pick(inventory, text) for text in wanted]
        plan = plan_initialise(chosen, mode == "raid1", mountpoint=self.mountpoint,
                               min_size_bytes=self.min_size_bytes)
        if token is None:
            return {"plan": plan.to_json(), "description": plan.describe(),
                    "token": plan.token, "job": None}
        if not hmac.compare_digest(token, plan.token):
            raise InvalidConfig("the confirmation token does not match these disks: ask for "
                                "the plan again and confirm the token it shows")
        with self._lock:
            running = [j for j in self._jobs.values() if j.kind == "initialise" and not j.done]
            if running:
                raise FailedPrecondition(f"disks are being initialised already (job "
                                         f"{running[0].id}); wait until it has finished")
            job = Job(secrets.token_hex(8), "initialise", [d.device_node for d in chosen],
                      mode, time.time(), steps=len(plan.steps))
            self._jobs[job.id] = job
            for old in sorted((j for j in self._jobs.values() if j.done),
                              key=lambda j: j.started)[:max(0, len(self._jobs) - JOBS_KEPT)]:
                del self._jobs[old.id]
        thread = threading.Thread(target=self._run, args=(job, plan, token),
                                  name=f"initialise-{job.id}", daemon=True)
        thread.start()
        log.warning("initialise job=%s disks=%s mode=%s started", job.id, ",".join(job.disks),
                    mode)
        return {"plan": plan.to_json(), "job": job.to_json()}

    def _run(self, job: Job, plan, token: str) -> None:
        try:
            result = run_initialise(plan, token, job.progress, runner=self.runner,
                                    reinspect=self.inventory)
            complete_initialise(result, self.volumes_path)
            if self.on_initialised is not None:
                self.on_initialised(result)
        except VigilError as exc:
            log.error("initialise job=%s failed: %s", job.id, exc)
            job.finish(None, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - the job must end with a reason
            log.exception("initialise job=%s crashed", job.id)
            job.finish(None, f"initialising failed inside vigil-hwd ({exc}); see its log")
            return
        job.finish(result.to_json())
        log.warning("initialise job=%s done: %s at %s", job.id, result.device,
                    result.mountpoint)

    # --- disks.job --------------------------------------------------------------------------
    def job(self, args: dict[str, Any]) -> dict[str, Any]:
        job_id = args.get("id")
        if not isinstance(job_id, str) or len(job_id) > 64:
            raise InvalidConfig("`id` must be the job id that disks.initialise returned")
        with self._lock:
            job = self._jobs.get(job_id)
        return {"job": job.to_json() if job is not None else None}

    # --- storage.status ---------------------------------------------------------------------
    def status(self, args: dict[str, Any]) -> dict[str, Any]:
        snap = self.snapshot()
        tracked = {}
        for entry in (snap or {}).get("data_disks") or []:
            tracked[entry["volume"]["uuid"].lower()] = entry
        volumes = []
        for vol in load_volumes(self.volumes_path):
            volumes.append(_volume_status(vol, tracked.get(vol["uuid"].lower())))
        raid = (snap or {}).get("raid")
        if raid is None:  # the monitor is not running: read md now (cheap: procfs, sysfs)
            raid = {name: a.to_json() for name, a in self.raid.read().items()}
        smart = {node: smart_summary(data) for node, data in
                 ((snap or {}).get("smart") or {}).items()}
        with self._lock:
            jobs = [j.to_json() for j in self._jobs.values() if not j.done]
        return {"time": time.time(), "monitor": snap is not None,
                "monitor_time": (snap or {}).get("time"), "volumes": volumes, "raid": raid,
                "smart": smart, "jobs": jobs}


def _initialise_args(args: dict[str, Any]) -> tuple[list[str], str, str | None]:
    unknown = sorted(str(k)[:40] for k in args if k not in ("disks", "mode", "token"))
    if unknown:
        raise InvalidConfig(f"unknown field(s) {', '.join(unknown)}; give disks, mode, token")
    wanted = args.get("disks")
    if not isinstance(wanted, list) or not wanted or \
            not all(isinstance(d, str) and 0 < len(d) <= MAX_NAME for d in wanted):
        raise InvalidConfig("`disks` must list the disks to initialise (device, serial or WWN)")
    mode = args.get("mode", "single")
    if mode not in MODES:
        raise InvalidConfig(f"`mode` must be one of {', '.join(MODES)}")
    token = args.get("token")
    if token is not None and (not isinstance(token, str) or not 0 < len(token) <= 64):
        raise InvalidConfig("`token` must be the confirmation token of the plan")
    return wanted, mode, token


def _pick(disks: Sequence[Disk], text: str) -> Disk:
    for disk in disks:
        if text in (disk.device_node, disk.serial, disk.wwn, disk.identity) and text:
            return disk
    raise InvalidConfig(f"no disk {text[:80]!r} is connected; list the disks again")


def _volume_status(vol: dict[str, str], tracked: dict[str, Any] | None) -> dict[str, Any]:
    mountpoint = vol["mountpoint"]
    check = find_marker(Path(mountpoint))
    mounted = check.ok and Path(check.root) == Path(mountpoint)
    entry: dict[str, Any] = {"uuid": vol["uuid"], "mountpoint": mountpoint, "mounted": mounted,
                             "detail": check.detail,
                             "state": tracked["state"] if tracked else ("mounted" if mounted
                                                                        else "unknown"),
                             "disk": ((tracked or {}).get("disk") or {}).get("device_node")}
    if tracked and tracked.get("detail"):
        entry["detail"] = tracked["detail"]
    if mounted:
        st = os.statvfs(mountpoint)
        total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
        entry.update(total_bytes=total, free_bytes=free,
                     used_bytes=total - st.f_bfree * st.f_frsize)
    return entry


def control_handlers(volumes_path: Path, state_dir: Path | None = None,
                     **options: Any) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    """The storage commands for vigil-hwd's ControlServer (see DiskControl for options)."""
    return DiskControl(volumes_path, state_dir, **options).handlers()
