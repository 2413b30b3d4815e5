"""The system area's control commands, served by vigil-hwd (root) on its control socket.

vigil-web runs unprivileged and calls these through `services.hwd()`; vigil-hwd owns
/persist/config/system.json and the files under /run. Every argument is checked here
again (the socket's other clients are not trusted more than the web); a refusal keeps
its class and words across the socket (400 / 409 / 503 at the web).

    system.get            {} -> settings, time, uptime, restart_needed
    system.set            {"changes": {"hostname"|"time"|"network": ...},
                           "client": "192.168.1.5", "confirm_other_subnet": false,
                           "set_time": "2026-11-23T14:05" (optional, NTP off)}
                          -> new settings, previous settings, problems, clock
    system.set_time       {"time": "2026-11-23T14:05"} (NTP must be off)
    system.backup         {"users": [...], "passphrase": "..."} -> the file (base64)
    system.restore        {"file": "<base64>", "passphrase": "..."} -> what was restored
    system.factory_reset  {"confirm": "<host name>|ERASE", "erase_recordings": false}
    system.reboot         {}

Changes are serialised by one lock: two owners saving at once cannot interleave a
settings file with the other's OS state.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable
from zoneinfo import ZoneInfo

from appliance import __version__
from appliance.core.errors import DataLoss, FailedPrecondition, InvalidConfig
from appliance.system.apply import (ApplyReport, apply_settings, parse_manual_time, run_all,
                                    set_time_command)
from appliance.system.backends import SystemOS
from appliance.system.backup import build_bundle, file_name, read_bundle
from appliance.system.configuration import read_config, read_secrets, restore_bundle
from appliance.system.paths import SystemPaths
from appliance.system.reset import move_recordings_aside, purge_erased, reset_files
from appliance.system.sealing import check_passphrase
from appliance.system.settings import SystemSettings, check_hostname, load_settings, save_settings
from appliance.system.transaction import recover

log = logging.getLogger(__name__)

RECORDER = "vigil-recorder.service"
CONFIRM_WORD = "ERASE"
AFTER_RESTORE = ("Restart the box to use the restored configuration: the recorder, the "
                 "hardware daemon, the network and the clock read it when they start.")


def _only(args: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(str(k)[:40] for k in set(args) - allowed)
    if unknown:
        raise InvalidConfig(f"unknown argument(s) {', '.join(unknown)}")


def _flag(args: dict[str, Any], name: str) -> bool:
    value = args.get(name, False)
    if not isinstance(value, bool):
        raise InvalidConfig(f"`{name}` must be true or false")
    return value


def _optional_passphrase(args: dict[str, Any]) -> str | None:
    value = args.get("passphrase")
    if value is None or value == "":
        return None
    return check_passphrase(value)


class SystemService:
    def __init__(self, system: SystemOS, paths: SystemPaths,
                 now: Callable[[], float] = time.time) -> None:
        self.system = system
        self.paths = paths
        self.now = now
        self.restart_needed = False
        self.recovery_problem: str | None = None
        self.purging: threading.Thread | None = None
        self._lock = threading.Lock()
        check_hostname(paths.default_hostname)

    # --- start ----------------------------------------------------------------------------
    def recover(self) -> None:
        """Finish what a power cut interrupted: a committed restore, an erase. A restore
        that cannot be finished is reported (system.get "problem"), never a reason for
        vigil-hwd not to start."""
        try:
            if recover(self.paths.journal, self.paths.transaction_dirs()):
                self.restart_needed = True
        except (OSError, DataLoss) as exc:
            log.error("an interrupted restore could not be finished: %s", exc)
            self.recovery_problem = (f"an interrupted restore could not be finished "
                                     f"({getattr(exc, 'strerror', None) or exc})")
        if self.paths.data_dir is not None and any(
                self.paths.data_dir.glob(".erasing-*")):
            self._purge_in_background()

    def _purge_in_background(self) -> None:
        self.purging = threading.Thread(target=purge_erased, args=(self.paths.data_dir,),
                                         name="erase-recordings", daemon=True)
        self.purging.start()

    # --- settings ---------------------------------------------------------------------------
    def defaults(self) -> SystemSettings:
        return SystemSettings(hostname=self.paths.default_hostname)

    def current(self) -> tuple[SystemSettings, str | None]:
        """The stored settings; the defaults and the reason when the file is damaged."""
        try:
            return load_settings(self.paths.settings, self.paths.zoneinfo, self.defaults()), None
        except DataLoss as exc:
            log.warning("system settings: %s", exc)
            return self.defaults(), f"{exc}; showing the defaults (saving replaces the file)"

    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        _only(args, set())
        settings, problem = self.current()
        now = self.now()
        local = datetime.fromtimestamp(now, ZoneInfo(settings.time.timezone))
        return {"settings": settings.to_json(), "time": now,
                "time_local": local.isoformat(timespec="seconds"),
                "uptime": self.system.uptime(), "restart_needed": self.restart_needed,
                "problem": "; ".join(p for p in (self.recovery_problem, problem) if p) or None}

    def set(self, args: dict[str, Any]) -> dict[str, Any]:
        """A partial change; with "set_time", the clock is set afterwards (NTP must be off
        in the new settings). Everything is checked before anything changes."""
        _only(args, {"changes", "client", "confirm_other_subnet", "set_time"})
        client = args.get("client")
        if client is not None and not isinstance(client, str):
            raise InvalidConfig("`client` must be an address")
        with self._lock:
            old, _ = self.current()
            new = old.updated(args.get("changes", {}), client=client,
                              confirm_other_subnet=_flag(args, "confirm_other_subnet"),
                              zoneinfo=self.paths.zoneinfo)
            when = None
            if args.get("set_time") is not None:
                if new.time.ntp:
                    raise FailedPrecondition("the clock follows NTP: turn NTP off to set the "
                                             "time by hand")
                when = parse_manual_time(args["set_time"], new.time.timezone)
            save_settings(self.paths.settings, new)
            report = self._apply(new, old)
            clock = None
            if when is not None:
                report = run_all(self.system, [set_time_command(when)], report)
                if not report.problems:
                    clock = {"time": when.timestamp(), "set_to": when.isoformat()}
        log.info("system settings changed: %s", ", ".join(
            part for part in ("hostname", "time", "network")
            if getattr(new, part) != getattr(old, part)) or "nothing")
        return {"settings": new.to_json(), "previous": old.to_json(),
                "problems": report.problems, "clock": clock}

    def _apply(self, new: SystemSettings, old: SystemSettings | None,
               report: ApplyReport | None = None) -> ApplyReport:
        try:
            result = apply_settings(self.system, new, self.paths.lan_interface, previous=old)
        except OSError as exc:
            result = ApplyReport(problems=[f"saved, but the files under /run could not be "
                                           f"written ({exc.strerror or exc}); the box uses "
                                           "them from the next start"])
        if report is not None:
            report.ran += result.ran
            report.problems += result.problems
            return report
        return result

    def set_time(self, args: dict[str, Any]) -> dict[str, Any]:
        _only(args, {"time"})
        with self._lock:
            settings, _ = self.current()
            if settings.time.ntp:
                raise FailedPrecondition("the clock follows NTP: turn NTP off to set the time "
                                         "by hand")
            when = parse_manual_time(args.get("time"), settings.time.timezone)
            result = self.system.run(set_time_command(when))
        if result.returncode != 0:
            raise FailedPrecondition(f"the clock was not set: {result.tail() or result.returncode}")
        log.info("clock set by hand to %s", when.isoformat())
        return {"time": when.timestamp(), "set_to": when.isoformat()}

    # --- backup and restore -------------------------------------------------------------------
    def backup(self, args: dict[str, Any]) -> dict[str, Any]:
        _only(args, {"users", "passphrase"})
        passphrase = _optional_passphrase(args)
        users = args.get("users")
        settings, _ = self.current()
        with self._lock:
            config = read_config(self.paths)
            secrets = read_secrets(self.paths, config) if passphrase else None
        created = datetime.fromtimestamp(self.now(), timezone.utc)
        data = build_bundle(config, users, secrets, passphrase,
                            {"hostname": settings.hostname, "appliance_version": __version__},
                            now=created)
        return {"file": base64.b64encode(data).decode("ascii"),
                "name": file_name(settings.hostname, created), "size": len(data),
                "sealed": passphrase is not None, "files": sorted(config),
                "camera_credentials": len(secrets["cameras"]) if secrets else None}

    def restore(self, args: dict[str, Any]) -> dict[str, Any]:
        _only(args, {"file", "passphrase"})
        if not isinstance(args.get("file"), str):
            raise InvalidConfig("give the backup file (base64)")
        try:
            raw = base64.b64decode(args["file"], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidConfig("the backup file is not valid base64") from None
        passphrase = args.get("passphrase") or None
        if passphrase is not None and not isinstance(passphrase, str):
            raise InvalidConfig("the passphrase must be text")
        bundle = read_bundle(raw, passphrase, self.paths.zoneinfo)
        with self._lock:
            result = restore_bundle(self.paths, bundle)
            self.restart_needed = True
        log.info("configuration restored from a backup of %s (%s)",
                 bundle.summary()["hostname"], bundle.summary()["created"])
        return {"summary": bundle.summary(), **result, "restart_needed": True,
                "next": AFTER_RESTORE}

    # --- factory reset and reboot -------------------------------------------------------------
    def factory_reset(self, args: dict[str, Any]) -> dict[str, Any]:
        _only(args, {"confirm", "erase_recordings"})
        erase = _flag(args, "erase_recordings")
        with self._lock:
            current, _ = self.current()
            confirm = args.get("confirm")
            if not isinstance(confirm, str) or confirm not in (current.hostname, CONFIRM_WORD):
                raise InvalidConfig(f"to confirm, type the box's name ({current.hostname}) or "
                                    f"{CONFIRM_WORD}")
            report = run_all(self.system, [["systemctl", "stop", RECORDER]], ApplyReport())
            try:
                erased = reset_files(self.paths)
                defaults = self.defaults()
                self._apply(defaults, current, report)
                kept = ["licence", "device key", "data disk registration"]
                if erase and self.paths.data_dir is not None:
                    if move_recordings_aside(self.paths.data_dir) is not None:
                        self._purge_in_background()
                    erased.append("recordings")
                else:
                    kept.append("recordings")
            finally:  # the recorder runs again whatever happened (with what is left)
                run_all(self.system, [["systemctl", "start", RECORDER]], report)
            self.restart_needed = False
        log.warning("factory reset: erased %s; kept %s", ", ".join(erased), ", ".join(kept))
        return {"erased": erased, "kept": kept, "hostname": defaults.hostname,
                "network": defaults.network.summary(), "problems": report.problems}

    def reboot(self, args: dict[str, Any]) -> dict[str, Any]:
        _only(args, set())
        result = self.system.run(["systemctl", "reboot"])
        if result.returncode != 0:
            raise FailedPrecondition(f"the box did not restart: {result.tail()}")
        return {"rebooting": True}


def control_handlers(os_backend: SystemOS, paths: SystemPaths,
                     now: Callable[[], float] = time.time) -> dict[str, Callable]:
    """The handlers for vigil-hwd's ControlServer; first finishes an interrupted restore
    or recordings erase."""
    service = SystemService(os_backend, paths, now)
    service.recover()
    return {"system.get": service.get, "system.set": service.set,
            "system.set_time": service.set_time, "system.backup": service.backup,
            "system.restore": service.restore, "system.factory_reset": service.factory_reset,
            "system.reboot": service.reboot}
