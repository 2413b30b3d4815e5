"""Replace a camera's password with a strong one the box generates ("camera activation").

Cameras ship with factory passwords (admin/12345, admin/admin, printed on the label)
that every scanner knows. After adoption the box gives the camera user it adopted with
a new password of its own over ONVIF Device Management and keeps that in the
credential store; the owner never sees it, and nothing prints or logs it.

The order guarantees that the box always has a password the camera accepts:

1. A rotation lock per camera (a second run at the same time is refused).
2. A pending password left by an earlier run that did not finish is settled first:
   whichever of the pending and the stored password the camera accepts is kept.
3. The stored password is checked (GetDeviceInformation) and the user's level read
   (GetUsers); SetUser must keep it. A camera that refuses either: nothing changed.
4. The new password is written aside as *pending* (fsync'd) before SetUser is sent,
   so a crash or power cut after the camera took it cannot lose it.
5. SetUser, then verification: a fresh session with the new password
   (GetDeviceInformation), then with the previous one if the new one fails, repeated
   for up to `settle_s` seconds while the camera applies the change.
   * New password accepted: it replaces the stored one; the pending copy goes.
   * SetUser refused with a fault and the previous password still accepted: the camera
     is unchanged; the pending copy goes.
   * Otherwise (SetUser acknowledged but the camera still takes only the previous
     password, or accepts neither, or stopped answering): the stored password stays in
     use and the pending one is kept, and the error says which password works now.
     The next `nvr cameras rotate-password` settles it (step 2).
"""

from __future__ import annotations

import fcntl
import logging
import os
import ssl
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from appliance.cameras.credentials import Credentials, generate_password
from appliance.cameras.onvif.client import AuthFailed, OnvifClient, OperationFault
from appliance.cameras.onvif.policy import AddressPolicy
from appliance.cameras.onvif.soap import BadResponse
from appliance.cameras.onvif.transport import CameraUnreachable, Timeouts
from appliance.cameras.registry import Camera, CameraRegistry
from appliance.core.clock import Clock, RealClock
from appliance.core.errors import FailedPrecondition

log = logging.getLogger(__name__)

SETTLE_S = 8.0          # how long a camera may take to apply a new password
FIRST_RETRY_S = 0.5     # then doubling, at most MAX_RETRY_S
MAX_RETRY_S = 2.0

PREVIOUS = "previous"   # the password the box had before (still stored and in use)
UNKNOWN = "unknown"     # the camera accepts neither right now; both are kept


@dataclass(frozen=True)
class Rotation:
    """A finished rotation. Holds no password."""

    camera_id: str
    username: str
    level: str          # kept from GetUsers ("" when an earlier run's password was adopted)
    note: str = ""

    def to_json(self) -> dict:
        return {"camera": self.camera_id, "rotated": True, "user": self.username,
                "level": self.level, "note": self.note}


class RotationFailed(FailedPrecondition):
    """The password was not replaced. `valid` says which password the camera accepts
    now: "previous" (the stored one, still in use) or "unknown" (neither was accepted
    when last tried; the stored one and the pending new one are both kept)."""

    def __init__(self, message: str, valid: str) -> None:
        super().__init__(message)
        self.valid = valid


def rotate_password(registry: CameraRegistry, camera_id: str, policy: AddressPolicy, *,
                    timeouts: Timeouts = Timeouts(), deadline_s: float = 30.0,
                    settle_s: float = SETTLE_S, clock: Clock | None = None,
                    ssl_context: ssl.SSLContext | None = None) -> Rotation:
    """Give a registered ONVIF camera's user a new generated password and store it once
    the camera accepts it (see the module docstring for the order and each outcome).

    Raises RotationFailed (with `valid`), AuthFailed (the stored password is refused;
    nothing changed), CameraUnreachable, AddressRefused, or FailedPrecondition."""
    run = _Run(registry, registry.get(camera_id), policy, timeouts, deadline_s, settle_s,
               clock or RealClock(), ssl_context)
    with _rotation_lock(registry, camera_id):
        return run.rotate()


@contextmanager
def _rotation_lock(registry: CameraRegistry, camera_id: str) -> Iterator[None]:
    directory = registry.credentials.directory
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    with open(directory / f".{camera_id}.rotate.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FailedPrecondition(f"camera {camera_id}: a password rotation is already "
                                     "running") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _Run:
    def __init__(self, registry: CameraRegistry, camera: Camera, policy: AddressPolicy,
                 timeouts: Timeouts, deadline_s: float, settle_s: float, clock: Clock,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.registry = registry
        self.store = registry.credentials
        self.camera = camera
        self.id = camera.id
        self.policy = policy
        self.timeouts = timeouts
        self.deadline_s = deadline_s
        self.settle_s = settle_s
        self.clock = clock
        self.ssl_context = ssl_context
        if not camera.xaddr:
            raise FailedPrecondition(f"camera {self.id} was not added over ONVIF (it has no "
                                     "device address), so the box cannot change its password")

    def client(self, creds: Credentials) -> OnvifClient:
        return OnvifClient(self.camera.xaddr, creds, self.policy, timeouts=self.timeouts,
                           deadline_s=self.deadline_s, clock=self.clock,
                           ssl_context=self.ssl_context)

    def accepts(self, creds: Credentials) -> bool:
        """Whether the camera takes these credentials now. Raises CameraUnreachable or
        BadResponse when it cannot tell."""
        client = self.client(creds)
        try:
            client.sync_clock()
            client.device_information()
        except AuthFailed:
            return False
        return True

    # -- the steps --------------------------------------------------------------------------

    def rotate(self) -> Rotation:
        current = self.store.get(self.id)
        if current is None or not current.username:
            raise FailedPrecondition(f"camera {self.id} has no stored user name and password "
                                     "to start from")
        settled = self.settle_pending(current)
        if settled is not None:
            return settled

        client = self.client(current)
        client.sync_clock()
        try:
            client.device_information()
        except AuthFailed as exc:
            raise AuthFailed(f"camera {self.id}: {exc}; the stored password no longer works, "
                             "so nothing was changed") from None
        level = self.user_level(client, current.username)

        new = Credentials(current.username, generate_password())
        self.store.put_pending(self.id, new)
        acknowledged: bool | None
        refusal = ""
        try:
            client.set_user(new.username, new.password, level)
            acknowledged = True
        except (OperationFault, AuthFailed) as exc:
            acknowledged, refusal = False, str(exc)
            log.info("camera=%s refused SetUser: %s", self.id, exc)
        except (CameraUnreachable, BadResponse) as exc:
            acknowledged, refusal = None, str(exc)
            log.warning("camera=%s SetUser without a clear answer: %s", self.id, exc)
        return self.conclude(current, new, level, acknowledged, refusal)

    def user_level(self, client: OnvifClient, username: str) -> str:
        try:
            users = client.users()
        except (AuthFailed, OperationFault, BadResponse) as exc:
            raise FailedPrecondition(
                f"camera {self.id}: the camera did not list its users ({exc}); changing a "
                "password over ONVIF needs an administrator account. Nothing was changed."
                ) from None
        for user in users:
            if user.username == username:
                if not user.level:
                    break
                return user.level
        raise FailedPrecondition(f"camera {self.id}: GetUsers does not give the level of user "
                                 f"{username!r}, which the change must keep. Nothing was "
                                 "changed.")

    def conclude(self, current: Credentials, new: Credentials, level: str,
                 acknowledged: bool | None, refusal: str) -> Rotation:
        # A camera that refused SetUser is asked once; one that took it gets time to apply.
        limit = self.clock.monotonic() + (self.settle_s if acknowledged is not False else 0)
        delay = FIRST_RETRY_S
        while True:
            previous_ok, trouble = False, ""
            try:
                if self.accepts(new):
                    return self.adopt(new, level)
                previous_ok = self.accepts(current)
            except (CameraUnreachable, BadResponse) as exc:
                trouble = str(exc)
            if previous_ok and acknowledged is False:
                break
            if self.clock.monotonic() + delay > limit:
                break
            self.clock.sleep(delay)
            delay = min(2 * delay, MAX_RETRY_S)

        if previous_ok and acknowledged is False:
            self.store.drop_pending(self.id)
            raise RotationFailed(
                f"camera {self.id}: the camera refused the new password ({refusal}). Its "
                "password is unchanged; the previous one still works and stays stored.",
                PREVIOUS)
        said = {True: "acknowledged the change (SetUser)",
                False: f"refused the change ({refusal})",
                None: f"gave no clear answer to the change ({refusal})"}[acknowledged]
        if previous_ok:
            log.warning("camera=%s SetUser %s but the new password is not accepted",
                        self.id, "acknowledged" if acknowledged else "unanswered")
            raise RotationFailed(
                f"camera {self.id}: the camera {said} but after {self.settle_s:g} s it still "
                "accepts only the previous password, which stays stored and in use. The new "
                "one is kept aside in case the camera applies it later; running "
                f"`nvr cameras rotate-password {self.id}` again settles which one it uses.",
                PREVIOUS)
        log.error("camera=%s accepts neither its previous nor its new password after SetUser",
                  self.id)
        now = f"it stopped answering ({trouble})" if trouble else \
            "it accepts neither the previous nor the new password"
        raise RotationFailed(
            f"camera {self.id}: the camera {said}, and now {now}. Both passwords are kept (the "
            "previous one stays in use); once the camera answers again, "
            f"`nvr cameras rotate-password {self.id}` finds out which one it takes.", UNKNOWN)

    def adopt(self, new: Credentials, level: str, note: str = "") -> Rotation:
        self.registry.set_credentials(self.id, new)
        self.store.drop_pending(self.id)
        log.info("camera=%s password rotated user=%s level=%s", self.id, new.username, level)
        return Rotation(self.id, new.username, level, note)

    def settle_pending(self, current: Credentials) -> Rotation | None:
        """An earlier rotation left a pending password: keep whichever one the camera
        takes. A Rotation when that is the pending one; None to go on rotating."""
        pending = self.store.get_pending(self.id)
        if pending is None:
            return None
        try:
            if self.accepts(pending):
                return self.adopt(pending, "", note="an earlier rotation had reached the "
                                  "camera; its password is now the stored one")
            if self.accepts(current):
                self.store.drop_pending(self.id)
                log.info("camera=%s pending password not in use; dropped", self.id)
                return None
            why = "it accepts neither the stored nor the pending password"
        except (CameraUnreachable, BadResponse) as exc:
            why = f"it does not answer ({exc})"
        raise RotationFailed(f"camera {self.id}: an earlier rotation did not finish and {why}; "
                             "both passwords are kept.", UNKNOWN)
