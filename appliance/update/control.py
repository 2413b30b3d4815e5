"""The update commands vigil-hwd (root) answers on its control socket, for the web UI.

vigil-web runs unprivileged: it stores an uploaded bundle in the upload directory on the
data disk and asks vigil-hwd to install it by file name (never by path: nothing outside
that directory can be named). The install runs as a job with progress; success reboots
the box into the new slot a few seconds later, so the page can still show "rebooting".

    update.status  {}                 -> slots, versions, pending trial, last results
    update.apply   {"file": "<name>"} -> the job (202-style: poll update.job)
    update.job     {}                 -> the current or last job
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from appliance.core.errors import FailedPrecondition, InvalidConfig, VigilError

log = logging.getLogger(__name__)

UPLOAD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.raucb$")
REBOOT_DELAY = 5.0


@dataclass
class UpdateJob:
    file: str
    started: float
    percent: int = 0
    phase: str = "checking the bundle"
    done: bool = False
    error: str = ""
    result: dict[str, Any] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {f.name: copy.deepcopy(getattr(self, f.name)) for f in fields(self)
                    if not f.name.startswith("_")}

    def progress(self, percent: int, phase: str) -> None:
        with self._lock:
            self.percent, self.phase = max(self.percent, min(percent, 99)), phase[:200]

    def finish(self, result: dict[str, Any] | None, error: str = "") -> None:
        with self._lock:
            self.done, self.error, self.result = True, error, result
            if not error:
                self.percent, self.phase = 100, "installed: rebooting into the new release"


class UpdateControl:
    def __init__(self, service_factory: Callable[[], Any], upload_dir: Path,
                 reboot_delay: float = REBOOT_DELAY) -> None:
        self.service_factory = service_factory     # raises FailedPrecondition without slots
        self.upload_dir = upload_dir
        self.reboot_delay = reboot_delay
        self.job: UpdateJob | None = None
        self._lock = threading.Lock()

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {"update.status": self.status, "update.apply": self.apply, "update.job": self.current}

    def status(self, args: dict[str, Any]) -> dict[str, Any]:
        status = self.service_factory().status()
        status["job"] = self.job.to_json() if self.job else None
        return status

    def current(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"job": self.job.to_json() if self.job else None}

    def apply(self, args: dict[str, Any]) -> dict[str, Any]:
        name = args.get("file")
        if set(args) - {"file"}:
            raise InvalidConfig("update.apply takes only `file`")
        if not isinstance(name, str) or not UPLOAD_NAME.match(name):
            raise InvalidConfig("`file` must be the name of an uploaded .raucb bundle")
        bundle = self.upload_dir / name
        if not bundle.is_file() or bundle.is_symlink():
            raise InvalidConfig(f"no uploaded bundle named {name}")
        service = self.service_factory()
        with self._lock:
            if self.job and not self.job.done:
                raise FailedPrecondition("an update is being installed already")
            self.job = job = UpdateJob(name, time.time())
        threading.Thread(target=self._run, args=(job, service, bundle), name="update-install",
                         daemon=True).start()
        return {"job": job.to_json()}

    def _run(self, job: UpdateJob, service, bundle: Path) -> None:
        result, error = None, ""
        try:
            result = service.apply(bundle, job.progress, reboot=False)
        except VigilError as exc:
            error = str(exc)
        except Exception as exc:   # noqa: BLE001  (the job reports it; the daemon lives on)
            log.exception("update install failed")
            error = f"internal error: {exc}"
        finally:
            # Before the job says done, on every path: never keep a 300 MB upload.
            try:
                bundle.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not delete the uploaded bundle %s: %s", bundle, exc)
        job.finish(None if error else result, error)
        if not error:
            time.sleep(self.reboot_delay)
            service.reboot()


def control_handlers(service_factory: Callable[[], Any], upload_dir: Path) -> dict:
    return UpdateControl(service_factory, upload_dir).handlers()
