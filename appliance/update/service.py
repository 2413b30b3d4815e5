"""Installing an update and deciding, at the next boot, whether to keep it.

    check_bundle   size, signature (RAUC against the keyring), compatible, anti-rollback:
                   every refusal is an error that says what is wrong; nothing is written.
    apply          check, `rauc install` (the inactive root and boot slots only) with
                   progress, then reboot into the new slot for its trial.
    pre_install    RAUC's pre-install handler: the same anti-rollback rules for every
                   install path (web, USB stick, `nvr update apply`, `rauc install`).
    post_install   RAUC's post-install handler: arms the health gate (pending.json).
    on_boot        vigil-update.service at every boot: the health gate after a trial boot
                   (commit or roll back), the rollback report on the old slot, and
                   `mark-good` on a normal boot (it refills the slot's boot tries).
"""

from __future__ import annotations

import configparser
import json
import logging
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from appliance.core.errors import FailedPrecondition, InvalidConfig
from appliance.update.gate import Probes, failures, wait_until_healthy
from appliance.update.rauc import Progress, Rauc
from appliance.update.store import Pending, UpdateStore
from appliance.update.versions import Release

log = logging.getLogger(__name__)

BUILD_JSON = Path("/usr/lib/vigil/build.json")
MAX_BUNDLE_BYTES = 1536 << 20      # root slot (1 GiB) + boot slot (128 MiB) + signature
RECENT_US = 180_000_000            # "recorded before the update": within these 3 minutes
GATE_LIMIT = 900.0                 # seconds after the gate starts (QEMU TCG boots slowly)


def running_release(build_json: Path = BUILD_JSON) -> tuple[Release, dict[str, Any]]:
    """The release of the root this runs from, and its build.json (compatible, commit)."""
    try:
        data = json.loads(build_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FailedPrecondition(f"this system has no readable {build_json} ({exc}): "
                                 f"updates need the appliance image") from None
    return Release.parse(data.get("version"), data.get("source_date_epoch", 0)), data


def booted_slot(cmdline: Path = Path("/proc/cmdline")) -> str:
    """A or B: the boot loader names the slot on the kernel command line (rauc.slot=)."""
    found = re.search(r"(?:^|\s)rauc\.slot=([AB])(?:\s|$)", cmdline.read_text(encoding="ascii", errors="replace"))
    if not found:
        raise FailedPrecondition("the kernel command line names no slot (rauc.slot=A|B)")
    return found[1]


def other(slot: str) -> str:
    return "B" if slot == "A" else "A"


def manifest_release(manifest: Path) -> tuple[Release, str]:
    """(release, compatible) from a mounted bundle's manifest.raucm."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(manifest.read_text(encoding="utf-8"))
        update = parser["update"]
    except (OSError, configparser.Error, KeyError) as exc:
        raise InvalidConfig(f"the bundle's manifest is unreadable: {exc}") from None
    return Release.parse(update.get("version"), update.get("build", 0)), update.get("compatible", "")


class UpdateService:
    def __init__(self, rauc: Rauc, store: UpdateStore, probes: Probes, *,
                 build_json: Path = BUILD_JSON, cmdline: Path = Path("/proc/cmdline"),
                 reboot: Callable[[], None] = lambda: None,
                 boot_time_us: Callable[[], int] = lambda: 0,
                 max_bundle_bytes: int = MAX_BUNDLE_BYTES, gate_limit: float = GATE_LIMIT,
                 now: Callable[[], float] = time.time) -> None:
        self.rauc = rauc
        self.store = store
        self.probes = probes
        self.build_json = build_json
        self.cmdline = cmdline
        self.reboot = reboot
        self.boot_time_us = boot_time_us
        self.max_bundle_bytes = max_bundle_bytes
        self.gate_limit = gate_limit
        self.now = now

    # --- what is installed ------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        running, build = running_release(self.build_json)
        pending = self.store.pending()
        floor = self.store.floor()
        try:
            slots = [asdict(slot) for slot in self.rauc.slots()]
            engine = ""
        except Exception as exc:   # noqa: BLE001  (the status page still shows the rest)
            slots, engine = [], str(exc)
        return {"running": {**running.to_json(), "commit": build.get("commit", ""),
                            "slot": self._booted_or_none()},
                "slots": slots, "engine_error": engine,
                "floor": floor.to_json() if floor else None,
                "pending": asdict(pending) if pending else None,
                "last_result": self.store.last_result(), "history": self.store.history()[-10:]}

    def _booted_or_none(self) -> str | None:
        try:
            return booted_slot(self.cmdline)
        except (OSError, FailedPrecondition):
            return None

    # --- may this release be installed? ---------------------------------------------------
    def allow_install(self, release: Release, compatible: str) -> None:
        running, build = running_release(self.build_json)
        expected = build.get("rauc_compatible", "")
        if expected and compatible != expected:
            raise InvalidConfig(f"this bundle is for {compatible!r}, not this box ({expected!r})")
        pending = self.store.pending()
        if pending and self._booted_or_none() == pending.to_slot:
            raise FailedPrecondition(f"the update to {pending.to_version} is still on trial: wait "
                                     f"until it is committed or rolled back")
        if release == running:
            raise FailedPrecondition(f"{release} is the release already running")
        if release < running:
            raise InvalidConfig(f"bundle {release} is older than the running {running}: "
                                f"downgrades are refused (anti-rollback)")
        floor = self.store.floor()
        if floor and release < floor:
            raise InvalidConfig(f"bundle {release} is older than {floor}, the newest release "
                                f"this box has run: downgrades are refused (anti-rollback)")

    def check_bundle(self, bundle: Path) -> dict[str, Any]:
        """Everything that can be checked before writing anything; the bundle's release."""
        try:
            size = bundle.stat().st_size
        except OSError as exc:
            raise InvalidConfig(f"cannot read the bundle: {exc.strerror}") from None
        if size > self.max_bundle_bytes:
            raise InvalidConfig(f"the bundle is {-(-size >> 20)} MiB, more than the "   # rounded up
                                f"{self.max_bundle_bytes >> 20} MiB an update can be")
        info = self.rauc.info(bundle)
        release = Release.parse(info.version, info.build or 0)
        self.allow_install(release, info.compatible)
        return {"version": release.version, "build": release.build,
                "description": info.description, "compatible": info.compatible, "bytes": size}

    def apply(self, bundle: Path, progress: Progress | None = None, reboot: bool = True) -> dict[str, Any]:
        checked = self.check_bundle(bundle)
        try:
            self.rauc.install(bundle, progress)
        except Exception as exc:
            self.store.record("install_failed", f"update to {checked['version']} failed to "
                              f"install: {exc}", version=checked["version"])
            raise
        log.info("update %s installed; rebooting into it for the trial", checked["version"])
        if reboot:
            self.reboot()
        return {**checked, "rebooting": reboot}

    # --- RAUC's handlers ---------------------------------------------------------------------
    def pre_install(self, manifest: Path) -> None:
        release, compatible = manifest_release(manifest)
        self.allow_install(release, compatible)

    def post_install(self, manifest: Path) -> Pending:
        release, _ = manifest_release(manifest)
        running, _ = running_release(self.build_json)
        slot = booted_slot(self.cmdline)
        recent = int(self.now() * 1_000_000) - RECENT_US
        cameras = sorted(name for name, cam in self.probes.cameras().items()
                         if cam.state == "recording" and cam.heartbeat_us >= recent and cam.fragments > 0)
        pending = Pending(release.version, release.build, other(slot), running.version, running.build,
                          slot, cameras, self.probes.storage_mounted(), round(self.now(), 3))
        self.store.set_pending(pending)
        log.info("update %s installed into slot %s; health gate armed for cameras %s",
                 release, pending.to_slot, ", ".join(cameras) or "(none)")
        return pending

    # --- at every boot ---------------------------------------------------------------------
    def on_boot(self) -> dict[str, Any]:
        slot = booted_slot(self.cmdline)
        running, _ = running_release(self.build_json)
        pending = self.store.pending()
        if pending is None:
            self.rauc.mark("good")
            self.store.raise_floor(running)
            return {"outcome": "normal", "slot": slot}
        if slot == pending.to_slot:
            return self._trial(pending, slot)
        reason = pending.failure or "the new system did not start (its boot attempts ran out)"
        self.rauc.mark("bad", "other")
        self.rauc.mark("active", "booted")
        self.rauc.mark("good")
        self.store.raise_floor(running)
        entry = self.store.record("rolled_back", f"update to {pending.to_version} failed and was "
                                  f"rolled back: {reason}", version=pending.to_version,
                                  running=running.version)
        self.store.clear_pending()
        log.error("%s", entry["message"])
        return {"outcome": "rolled_back", "slot": slot, "message": entry["message"]}

    def _trial(self, pending: Pending, slot: str) -> dict[str, Any]:
        healthy, checks = wait_until_healthy(pending, self.probes, self.boot_time_us(), self.gate_limit)
        report = [check.to_json() for check in checks]
        if healthy:
            self.rauc.mark("good")
            self.store.raise_floor(pending.target)
            last = self.store.last_result() or {}
            if last.get("outcome") == "committed" and last.get("version") == pending.to_version:
                entry = last    # a power cut came after the record, before the clear
            else:
                entry = self.store.record("committed", f"updated to {pending.to_version} from "
                                          f"{pending.from_version}", version=pending.to_version,
                                          checks=report)
            self.store.clear_pending()
            log.info("%s", entry["message"])
            return {"outcome": "committed", "slot": slot, "message": entry["message"]}
        pending.failure = failures(checks)
        self.store.set_pending(pending)
        log.error("update %s failed its health gate (%s): rolling back", pending.to_version, pending.failure)
        self.rauc.mark("bad")
        self.reboot()
        return {"outcome": "rolling_back", "slot": slot, "message": pending.failure, "checks": report}
