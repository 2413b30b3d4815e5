"""Managing the camera list: the steps `nvr cameras` and the web API share.

Both front ends check a new camera the same way and call the same registry operations,
so a camera refused at the shell is refused in the browser with the same words:

* the camera id (the recorder's name for it: directories, index rows, URLs) and the
  label the owner sees are checked here; a label is free text shown as text, so
  `<img onerror=...>` is stored as typed, but control, format and unassigned
  characters (NUL, newlines, bidi overrides) and overlong labels are refused;
* an ONVIF camera is asked what it is through the address policy (SSRF guard); an RTSP
  URL is checked by the policy too when one is given (the web API always gives one;
  the shell trusts its root user, see `rtsp_camera`);
* the registry then refuses duplicates, the bandwidth budget and the licence's channel
  count under its file lock.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable
from urllib.parse import urlsplit

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.registry import (Camera, CameraRegistry, StreamInfo, from_onboarded,
                                        with_credentials)
from appliance.config.cameras import CameraSettings, build_camera_settings
from appliance.config.recorder import CAMERA_NAME
from appliance.core.errors import FailedPrecondition, InvalidConfig, VigilError

if TYPE_CHECKING:  # the ONVIF stack is imported when it is used (`nvr` starts quickly)
    from appliance.cameras.onvif.policy import AddressPolicy

MAX_LABEL = 64
MAX_USERNAME = 64
MAX_PASSWORD = 128
MAX_BITRATE_KBPS = 100_000
# Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned
# characters, and line/paragraph separators: nothing an owner types into a name.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def load_camera_settings(config: Path | None) -> CameraSettings:
    """The `[cameras]` settings of the appliance TOML (defaults when there is none yet)."""
    from appliance.config.recorder import load_config_file

    if config is None or not Path(config).exists():
        return build_camera_settings({})
    return build_camera_settings(load_config_file(Path(config)).camera_settings)


def open_camera_registry(registry: Path, secrets: Path, config: Path | None = None,
                         channel_limit: Callable[[], int] | None = None) -> CameraRegistry:
    return CameraRegistry(Path(registry), CredentialStore(Path(secrets)),
                          load_camera_settings(config), channel_limit=channel_limit)


def address_policy(settings: CameraSettings, extra_networks: Iterable[str] = (), *,
                   own_ports: Iterable[int] = (), this_host: bool = False) -> AddressPolicy:
    """The SSRF guard for cameras: the configured `allowed_networks` (plus, at the shell,
    --allow-network). `this_host` also counts this machine's interface addresses as the
    box's own (their `own_ports` refused), as the web API does."""
    from appliance.cameras.onvif.policy import DEFAULT_OWN_PORTS, AddressPolicy

    networks = [str(n) for n in settings.networks()] + list(extra_networks)
    ports = set(DEFAULT_OWN_PORTS) | {int(p) for p in own_ports}
    if this_host:
        return AddressPolicy.for_this_host(networks, own_ports=ports)
    return AddressPolicy(networks, own_ports=ports)


# --- checks of what a person typed ------------------------------------------------------

def check_camera_id(value: Any) -> str:
    if not isinstance(value, str) or not CAMERA_NAME.match(value):
        raise InvalidConfig("camera name: use 1-32 letters, digits, '-' or '_', starting "
                            "with a letter or digit (it names the camera's recordings; "
                            "the label can be anything readable)")
    return value


def check_label(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidConfig("label: give text")
    label = value.strip()
    if not label or len(label) > MAX_LABEL:
        raise InvalidConfig(f"label: 1-{MAX_LABEL} characters")
    if any(unicodedata.category(ch) in REFUSED_CATEGORIES for ch in label):
        raise InvalidConfig("label: control characters, line breaks and invisible "
                            "formatting characters are not allowed")
    return label


def check_credentials(username: Any, password: Any) -> Credentials | None:
    """A camera login from a form: both or neither (None)."""
    if username in (None, "") and password in (None, ""):
        return None
    if not isinstance(username, str) or not isinstance(password, str):
        raise InvalidConfig("username and password: give both as text")
    if not username or len(username) > MAX_USERNAME:
        raise InvalidConfig(f"username: 1-{MAX_USERNAME} characters")
    if not password or len(password) > MAX_PASSWORD:
        raise InvalidConfig(f"password: 1-{MAX_PASSWORD} characters")
    for what, text in (("username", username), ("password", password)):
        if any(unicodedata.category(ch) == "Cc" for ch in text):
            raise InvalidConfig(f"{what}: control characters are not allowed")
    return Credentials(username, password)


def check_bitrate(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 <= value <= MAX_BITRATE_KBPS:
        raise InvalidConfig(f"bitrate_kbps: a whole number 0-{MAX_BITRATE_KBPS} (0: not known)")
    return value


def _check_url_text(value: Any, what: str) -> str:
    from appliance.cameras.onvif.policy import MAX_URL_LENGTH

    if not isinstance(value, str) or not value or len(value) > MAX_URL_LENGTH:
        raise InvalidConfig(f"{what}: give the address as text, at most {MAX_URL_LENGTH} "
                            "characters")
    return value


# --- new cameras --------------------------------------------------------------------------

def rtsp_camera(camera_id: str, label: str, url: str, sub: str | None = None,
                bitrate_kbps: int = 0, policy: AddressPolicy | None = None) -> Camera:
    """A camera given by its stream URL(s) (no ONVIF). With `policy`, every URL must pass
    it (scheme, network, loopback, metadata and the box's own ports) before the recorder
    ever opens it. `nvr cameras add --rtsp` gives none: its user is root on the box
    already, and the recorder tests add cameras on loopback that way."""
    url = _check_url_text(url, "the RTSP URL (rtsp)")
    if sub is not None:
        sub = _check_url_text(sub, "the sub stream URL (sub)")
    if policy is not None:
        for uri in (url, sub):
            if uri is not None:
                policy.check_url(uri, "stream")
    host = urlsplit(url).hostname or ""
    return Camera(camera_id, label or camera_id, host,
                  StreamInfo(url, bitrate_kbps=bitrate_kbps),
                  StreamInfo(sub) if sub else None)


def onvif_camera(camera_id: str, label: str, xaddr: str, creds: Credentials | None,
                 policy: AddressPolicy, *, endpoint: str | None = None,
                 deadline_s: float = 30.0) -> Camera:
    """Ask the camera (ONVIF) what it is and where its streams are; every address it
    gives is checked against the policy before anything is fetched."""
    from appliance.cameras.onvif import onboard

    xaddr = _check_url_text(xaddr, "the ONVIF device address (xaddr)")
    onboarded = onboard(xaddr, creds, policy, endpoint_reference=endpoint,
                        deadline_s=deadline_s)
    camera = from_onboarded(onboarded, camera_id, label)
    policy.check_url(camera.main.uri, "stream")
    return camera


@dataclass(frozen=True)
class Added:
    camera: Camera
    rotation: Any = None      # rotation.Rotation when the password was replaced


def add_camera(registry: CameraRegistry, camera: Camera, creds: Credentials | None, *,
               rotate_with: AddressPolicy | None = None) -> Added:
    """Register the camera (refused: duplicate, budget, licence); then, with
    `rotate_with`, replace its password by a generated one (rotation.py).

    Registered first, with the password that works now: whatever happens during the
    rotation, the box keeps a password the camera accepts, and the error says so."""
    added = registry.add(camera, creds)
    if rotate_with is None:
        return Added(added)
    from appliance.cameras.rotation import RotationFailed, rotate_password

    try:
        rotation = rotate_password(registry, added.id, rotate_with)
    except RotationFailed as exc:
        raise RotationFailed(f"camera {added.id} was added with the password you gave, but "
                             f"its password was not replaced: {_unprefixed(exc, added.id)}",
                             exc.valid) from None
    except (VigilError, OSError) as exc:
        raise FailedPrecondition(f"camera {added.id} was added with the password you gave, "
                                 "which stays in use; replacing it failed: "
                                 f"{_unprefixed(exc, added.id)}") from None
    return Added(added, rotation)


def _unprefixed(exc: BaseException, camera_id: str) -> str:
    text = str(exc)
    prefix = f"camera {camera_id}: "
    return text[len(prefix):] if text.startswith(prefix) else text


# --- changes ------------------------------------------------------------------------------

def set_label(registry: CameraRegistry, camera_id: str, label: str) -> Camera:
    """Rename what the owner sees; the id (and so the recordings) stays."""
    label = check_label(label)
    with registry._locked() as cams:  # the registry's own lock (same package)
        for i, cam in enumerate(cams):
            if cam.id == camera_id:
                cams[i] = replace(cam, label=label)
                return cams[i]
    raise InvalidConfig(f"no camera {camera_id!r}")


def live_stream_url(registry: CameraRegistry, camera_id: str) -> str | None:
    """The stream live view opens for a camera (its sub stream when it has one), with its
    login; None for an unknown or disabled camera."""
    for cam in registry.cameras():
        if cam.id == camera_id and cam.enabled:
            stream = cam.sub or cam.main
            return with_credentials(stream.uri, registry.credentials.get(cam.id))
    return None
