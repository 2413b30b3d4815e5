"""PoE auto-adoption: the camera that appears after a port powers up is that port's camera.

Commercial NVRs add a camera plugged into one of their PoE ports by themselves and name
it after the port (hardware.md §2). Behind an unmanaged switch chip the data plane says
nothing about ports, so the link is made in time: when a port starts delivering power a
*window* opens (`window_seconds`), and a device that newly appears on the camera network
inside it is attributed to that port. See docs/design/poe.md, "Port to camera mapping".

Sources of "a device appeared" (each injectable; all optional):
* the kernel neighbour table of the camera interface (neighbours.NeighbourTable): an
  entry that is new, or usable again after FAILED/INCOMPLETE/missing;
* a WS-Discovery probe on the camera interface (`discover`), at start and every
  `probe_interval` while a window is open: a camera that answers;
* dnsmasq's lease file (neighbours.LeaseFile): a lease that is new or changed.
A device is *present* from a sighting until the neighbour table has missed it for
`gone_seconds`, or until the port it is on loses power; only a device that was not
present counts as appearing. What is there when the adopter starts is the baseline.

Attribution never guesses: a device is given to a port only when no other open window
could explain it (after known cameras have claimed their own ports, and a device that
appeared before a port's power-up plus `min_boot_seconds` cannot be that port's).
Otherwise the ports and devices involved are left unlinked with an alert.

For an attributed device: a camera already in the registry (MAC, endpoint, or its
address when the registry has no MAC) is re-linked with `set_poe_port`; an unknown one
is onboarded over ONVIF with the owner's default camera credentials and added as
`port<N>` labelled with the port, `poe_port` set. No credentials, a refused password,
a licence or bandwidth refusal, or a camera that does not speak ONVIF: a *suggestion*
("found on Port 3, needs its password") and an alert, never a crash.

Threads: `on_power_change` (the PoE manager's listener) only queues the change and
wakes the adopter; `step()` does the work (reads, attribution, onboarding) on the
adopter's own thread (`AdoptionService`), so the PoE poll loop is never held up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import logging
import os
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from appliance.cameras.credentials import Credentials, CredentialStore
from appliance.cameras.onvif import (AddressPolicy, AddressRefused, AuthFailed,
                                     DiscoveredDevice, OnboardedCamera)
from appliance.cameras.registry import Camera, CameraRegistry, from_onboarded, with_host
from appliance.config.model import load_section, setting
from appliance.core.clock import Clock, RealClock
from appliance.core.errors import (DataLoss, FailedPrecondition, InvalidConfig,
                                   ResourceExhausted, Unavailable, VigilError)
from appliance.poe.manager import PowerChange
from appliance.poe.neighbours import Lease, Neighbour, normal_mac
from appliance.storage.alerts import Alert

log = logging.getLogger(__name__)

# The owner's default camera credentials: a CredentialStore of their own (not the cameras'
# store, whose ids are camera names: no id there can be reserved), under this id.
DEFAULT_CREDENTIALS_ID = "default"
DEFAULT_CREDENTIALS_DIR = Path("/persist/secrets/adoption")
SNAPSHOT_NAME = "adoption.json"

MAX_DEVICES = 512            # devices remembered (absent ones are forgotten first)
MAX_FRESH_PER_SCAN = 32      # new appearances taken from one scan (a MAC flood is cut here)
MAX_PENDING = 64
MAX_JOBS = 16
MAX_JOBS_PER_STEP = 4        # onboardings per step (each bounded by onboard_deadline)
MAX_SUGGESTIONS = 64
MAX_PROBE_RESULTS = 64
MAX_ID_SUFFIX = 9            # port3, port3-2 ... port3-9
FORGET_ABSENT_S = 86400.0

Discover = Callable[[Sequence[str]], list[DiscoveredDevice]]
Onboarder = Callable[..., OnboardedCamera]


# --- settings ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class AdoptionSettings:
    enabled: bool = setting(
        True, "link the camera that appears on a port that just powered up to that port")
    auto_add: bool = setting(
        True, "also add such a camera when the box does not know it (false: only link "
        "cameras already added; the others become suggestions)")
    rotate_password: bool = setting(
        False, "after adding a camera with the default camera password, give it a generated "
        "password of its own (ONVIF SetUser; the default one stays in use if that fails)")
    window_seconds: float = setting(
        120.0, "how long after a port powers up a new device on the camera network is "
        "taken for that port's camera (cameras take 20-90 s to boot)", low=30, high=600)
    min_boot_seconds: float = setting(
        3.0, "a device seen sooner than this after a port powered up is not that port's "
        "camera (nothing boots that fast)", low=0, high=60)
    scan_interval: float = setting(
        2.0, "seconds between reads of the camera network while a port's window is open",
        low=0.5, high=30)
    idle_scan_interval: float = setting(
        10.0, "seconds between reads of the camera network otherwise", low=1, high=300)
    gone_seconds: float = setting(
        20.0, "a device missing from the neighbour table this long has left; seen again, "
        "it counts as appearing", low=5, high=600)
    probe_interval: float = setting(
        10.0, "seconds between WS-Discovery probes on the camera interface while a window "
        "is open (0 = never probe)", low=0, high=300)
    probe_seconds: float = setting(
        2.0, "how long a WS-Discovery probe listens for answers", low=0.5, high=10)
    onboard_deadline: float = setting(
        20.0, "seconds one ONVIF onboarding attempt may take in all", low=5, high=120)
    retry_seconds: float = setting(
        10.0, "seconds between onboarding attempts of a camera whose ONVIF service is not "
        "up yet", low=2, high=300)
    give_up_seconds: float = setting(
        300.0, "stop trying to onboard an attributed camera after this long; it becomes a "
        "suggestion", low=30, high=3600)
    lease_file: str = setting(
        "", "dnsmasq lease file of the camera network's DHCP server, e.g. "
        "/var/lib/misc/dnsmasq.leases ('' = not used)")

    def validate(self) -> None:
        if 0 < self.probe_interval < 2:
            raise InvalidConfig("poe.adoption.probe_interval: 0 (never) or at least 2 s")
        if self.give_up_seconds < self.retry_seconds:
            raise InvalidConfig("poe.adoption.give_up_seconds must be at least retry_seconds")


def build_adoption_settings(values: Mapping[str, Any]) -> AdoptionSettings:
    return load_section(AdoptionSettings, dict(values), "poe.adoption")


def split_adoption_settings(poe_values: Mapping[str, Any]) -> tuple[dict, AdoptionSettings]:
    """`[poe]` values without `[poe.adoption]` (for build_poe_settings), and the latter built."""
    values = dict(poe_values)
    raw = values.pop("adoption", {})
    if not isinstance(raw, Mapping):
        raise InvalidConfig("poe.adoption: expected a table of settings")
    return values, build_adoption_settings(raw)


# --- credentials ---------------------------------------------------------------------------

def default_credentials(store: CredentialStore) -> Callable[[], Credentials | None]:
    """The owner's default camera credentials from `store` (a CredentialStore on
    DEFAULT_CREDENTIALS_DIR, not the cameras' one); None until set."""
    return lambda: store.get(DEFAULT_CREDENTIALS_ID)


def set_default_credentials(store: CredentialStore, creds: Credentials) -> None:
    store.put(DEFAULT_CREDENTIALS_ID, creds)


def _fingerprint(creds: Credentials | None) -> str:
    if creds is None:
        return ""
    return hashlib.sha256(f"{creds.username}\0{creds.password}".encode()).hexdigest()[:16]


# --- what the adopter tracks ---------------------------------------------------------------

@dataclass
class _Device:
    id: int
    mac: str = ""
    ips: list[str] = field(default_factory=list)
    endpoint: str = ""
    xaddrs: list[str] = field(default_factory=list)
    name: str = ""
    hardware: str = ""
    present: bool = False
    in_neigh: bool = False          # the neighbour table has listed it at least once
    neigh_usable: bool = False      # usable in the last neighbour read
    absent_since: float | None = None
    last_seen: float = 0.0
    port: str = ""                  # the port label the adopter attributed it to

    @property
    def ip(self) -> str:
        """The address to talk to: IPv4 before IPv6, link-local last."""
        def rank(item: tuple[int, str]) -> tuple[int, int, int]:
            addr = ipaddress.ip_address(item[1])
            return (addr.version, 1 if addr.is_link_local else 0, item[0])
        return min(enumerate(self.ips), key=rank)[1] if self.ips else ""

    def describe(self) -> str:
        parts = [p for p in (self.ip, self.mac) if p]
        return " ".join([parts[0]] + [f"({p})" for p in parts[1:]]) if parts else \
            (self.endpoint or "a device")

    def add_ip(self, ip: str) -> None:
        """The latest address first (the one to use among equals)."""
        if ip:
            if ip in self.ips:
                self.ips.remove(ip)
            self.ips.insert(0, ip)
            del self.ips[4:]


@dataclass
class _Window:
    port: int
    label: str
    opened: float
    closes: float
    lost_at: float | None = None
    claimed: str = ""               # "" open; "device", "known", "ambiguous", "gone"

    def covers(self, at: float, min_boot: float) -> bool:
        """A device seen at `at` may be this port's (claimed or not)."""
        end = self.closes if self.lost_at is None else min(self.closes, self.lost_at)
        return self.opened + min_boot <= at <= end

    def accepts(self, at: float, min_boot: float) -> bool:
        return not self.claimed and self.covers(at, min_boot)

    def alive(self, now: float) -> bool:
        return self.lost_at is None and now <= self.closes and not self.claimed


@dataclass
class _Appearance:
    device: int
    at: float


@dataclass
class _Job:
    device: int
    port: int
    label: str
    attributed: float
    due: float
    attempts: int = 0


@dataclass(frozen=True)
class Suggestion:
    """A device the owner may want to add by hand, and why it was not added."""

    ip: str
    mac: str
    port: str                       # the port it was attributed to ("" = not known)
    ports: tuple[str, ...]          # ambiguous: the ports it may be on
    reason: str
    needs_credentials: bool
    xaddr: str
    endpoint: str
    name: str
    hardware: str
    wall_time: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"ports": list(self.ports)}


@dataclass(frozen=True)
class Outcome:
    """One thing the adopter did: adopted, linked, suggested, ambiguous, refused."""

    kind: str
    label: str
    camera_id: str
    ip: str
    mac: str
    detail: str
    wall_time: float

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- the adopter ---------------------------------------------------------------------------

class PortAdopter:
    """Links (and adds) the camera that appears after a PoE port powers up. See the module
    docstring; `on_power_change` is the PoE manager's listener, `step()` does the work."""

    def __init__(self, registry: CameraRegistry, policy: AddressPolicy, *,
                 settings: AdoptionSettings | None = None, clock: Clock | None = None,
                 neighbours: Callable[[], Iterable[Neighbour]] | None = None,
                 leases: Callable[[], Iterable[Lease]] | None = None,
                 discover: Discover | None = None, onboarder: Onboarder | None = None,
                 credentials: Callable[[], Credentials | None] | None = None,
                 confirm: Callable[[Camera, str], str | None] | None = None,
                 rotator: Callable[..., Any] | None = None,
                 alert_sink: Callable[[list[Alert]], None] | None = None) -> None:
        if onboarder is None:
            from appliance.cameras.onvif import onboard as onboarder
        self.registry = registry
        self.policy = policy
        self.settings = settings or AdoptionSettings()
        self.clock = clock or RealClock()
        self._neighbours = neighbours
        self._leases = leases
        self._discover = discover
        self._onboard = onboarder
        self._credentials = credentials or (lambda: None)
        self._confirm = confirm      # default: rediscover.OnvifConfirm (made when needed)
        self._rotator = rotator      # default: rotation.rotate_password
        self.alert_sink = alert_sink
        self.wake: Callable[[], None] | None = None   # set by AdoptionService
        self._lock = threading.Lock()                 # the change queue and the snapshot
        self._step_lock = threading.Lock()
        self._changes: deque[PowerChange] = deque(maxlen=256)
        self._powered: dict[str, bool] = {}
        self._port_numbers: dict[str, int] = {}
        self._windows: list[_Window] = []
        self._devices: list[_Device] = []
        self._pending: list[_Appearance] = []
        self._jobs: list[_Job] = []
        self._suggestions: OrderedDict[int, Suggestion] = OrderedDict()
        self._tried: dict[int, str] = {}              # device -> fingerprint of refused creds
        self._baselined: set[str] = set()
        self._leases_seen: dict[str, tuple[str, int]] = {}
        self._next_probe = 0.0
        self._source_errors: dict[str, str] = {}
        self._alerts: list[Alert] = []
        self._next_id = 1
        self._snapshot: dict[str, Any] = {}
        self._snapshot_suggestions: list[Suggestion] = []
        self._active: set[str] = set()                # alerts raised once until cleared
        self.recent: deque[Outcome] = deque(maxlen=64)

    # --- the listener (PoE thread) --------------------------------------------------------
    def on_power_change(self, change: PowerChange) -> None:
        """Queue the change and wake the adopter; nothing else, so the poll loop goes on."""
        with self._lock:
            self._changes.append(change)
        if self.wake is not None:
            self.wake()

    # --- views ----------------------------------------------------------------------------
    def suggestions(self) -> list[Suggestion]:
        """Devices found but not added (or not linked), newest last, as of the last step."""
        with self._lock:
            return list(self._snapshot_suggestions)

    def snapshot(self) -> dict[str, Any]:
        """The state after the last step (windows, onboardings under way, suggestions)."""
        with self._lock:
            return dict(self._snapshot)

    def next_wait(self) -> float:
        """Seconds until the next step is useful."""
        now = self.clock.monotonic()
        busy = any(w.alive(now) for w in self._windows) or self._pending
        wait = self.settings.scan_interval if busy else self.settings.idle_scan_interval
        for job in self._jobs:
            wait = min(wait, max(0.0, job.due - now))
        return wait

    # --- one step -------------------------------------------------------------------------
    def step(self) -> list[Alert]:
        """Apply queued power changes, read the sources, attribute what appeared, onboard
        what is due; returns (and hands to the alert sink) the alerts it raised."""
        with self._step_lock:
            now = self.clock.monotonic()
            with self._lock:
                changes = list(self._changes)
                self._changes.clear()
            for change in changes:
                self._apply_power(change)
            fresh = self._scan(now)
            for dev in fresh:
                if len(self._pending) >= MAX_PENDING:
                    log.warning("adoption: too many devices appearing at once; ignoring %s",
                                dev.describe())
                    continue
                self._pending = [a for a in self._pending if a.device != dev.id]
                self._pending.append(_Appearance(dev.id, now))
            if self._pending:
                cams = self._cameras()
                if cams is not None:
                    self._resolve(now, cams)
            if any(s.port for s in self._suggestions.values()):
                cams = self._cameras()
                if cams is not None:
                    self._follow_up(now, cams)
            self._run_jobs(now)
            self._expire(now)
            self._evict(now)
            alerts, self._alerts = self._alerts, []
            snap = self._build_snapshot(now)
            with self._lock:
                self._snapshot = snap
                self._snapshot_suggestions = list(self._suggestions.values())
        if alerts and self.alert_sink is not None:
            try:
                self.alert_sink(alerts)
            except Exception:   # a broken sink must not stop adoption
                log.exception("adoption alert sink failed")
        return alerts

    # --- power ----------------------------------------------------------------------------
    def _apply_power(self, change: PowerChange) -> None:
        label, at = change.label, change.monotonic
        self._port_numbers[label] = change.port
        for win in self._windows:
            if win.label == label and win.lost_at is None:
                win.lost_at = at   # a window ends when its port's power changes again
        if change.powered:
            self._powered[label] = True
            self._windows.append(_Window(change.port, label, at,
                                         at + self.settings.window_seconds))
            log.info("adoption port=%d label=%r powered: window open %.0f s", change.port,
                     label, self.settings.window_seconds)
            return
        self._powered[label] = False
        # Its devices went with the power: when they show up again (here or on another
        # port) they appear anew. The camera stays registered and keeps its link.
        gone = [d for d in self._devices if d.port == label]
        cams = self._cameras(quiet=True) or []
        for cam in cams:
            if cam.poe_port == label:
                gone += [d for d in self._devices if self._matches(d, cam)]
        for dev in gone:
            self._force_absent(dev, at)
        dropped = [j for j in self._jobs if j.label == label]
        self._jobs = [j for j in self._jobs if j.label != label]
        for job in dropped:
            log.info("adoption port=%d label=%r lost power before its camera was added; it "
                     "is tried again when the port powers up", job.port, label)
        for key in [k for k, s in self._suggestions.items() if s.port == label]:
            del self._suggestions[key]

    def _force_absent(self, dev: _Device, at: float) -> None:
        if dev.present:
            log.info("adoption device=%s gone (its port lost power)", dev.describe())
        dev.present = False
        dev.absent_since = at
        dev.port = ""

    # --- sources ----------------------------------------------------------------------------
    def _scan(self, now: float) -> list[_Device]:
        fresh: list[_Device] = []

        def sighted(dev: _Device, evidence: bool, source: str) -> None:
            dev.last_seen = now
            if source not in self._baselined:      # the first read of a source: baseline
                dev.present, dev.absent_since = True, None
                return
            if dev.present:
                dev.absent_since = None
            elif evidence and len(fresh) < MAX_FRESH_PER_SCAN:
                dev.present, dev.absent_since = True, None
                if dev not in fresh:
                    fresh.append(dev)

        entries = self._read("neighbours", self._neighbours)
        if entries is not None:
            usable: dict[str, list[str]] = {}
            for entry in entries:
                if entry.usable and (entry.mac in usable or len(usable) < MAX_DEVICES):
                    usable.setdefault(entry.mac, []).append(entry.ip)
            for mac, ips in usable.items():
                dev = self._device_for(mac=mac, ips=ips)
                dev.ips = [ip for ip in dev.ips if ip in ips]   # the table is the whole truth
                was_usable = dev.neigh_usable
                dev.in_neigh = dev.neigh_usable = True
                # Evidence: the entry is new, or usable again after FAILED/INCOMPLETE/gone.
                # An entry that stayed (STALE for ever, after an unplug) proves nothing.
                sighted(dev, not was_usable, "neighbours")
            for dev in self._devices:
                if dev.in_neigh and dev.mac not in usable:
                    dev.neigh_usable = False
                    if dev.present:
                        dev.absent_since = dev.absent_since if dev.absent_since is not None \
                            else now
                        if now - dev.absent_since >= self.settings.gone_seconds:
                            dev.present = False
                            log.info("adoption device=%s left the camera network",
                                     dev.describe())
            self._baselined.add("neighbours")

        leases = self._read("leases", self._leases)
        if leases is not None:
            for lease in list(leases)[:MAX_DEVICES]:
                before = self._leases_seen.get(lease.mac)
                self._leases_seen[lease.mac] = (lease.ip, lease.expiry)
                dev = self._device_for(mac=lease.mac, ips=[lease.ip])
                if before is None or before != (lease.ip, lease.expiry) \
                        or "leases" not in self._baselined:
                    sighted(dev, True, "leases")   # it just did DHCP (or: baseline)
            if len(self._leases_seen) > MAX_DEVICES:
                self._leases_seen = dict(list(self._leases_seen.items())[-MAX_DEVICES:])
            self._baselined.add("leases")

        probing = self._discover is not None and self.settings.probe_interval > 0 and (
            "probe" not in self._baselined
            or (now >= self._next_probe and any(w.alive(now) for w in self._windows)))
        if probing:
            self._next_probe = now + self.settings.probe_interval
            found = self._read("probe", lambda: self._discover(()))
            if found is not None:
                for device in list(found)[:MAX_PROBE_RESULTS]:
                    dev = self._merge_discovered(device)
                    if dev is not None:
                        sighted(dev, True, "probe")
                self._baselined.add("probe")
        return fresh

    def _read(self, source: str, reader: Callable[[], Iterable] | None) -> list | None:
        if reader is None:
            return None
        try:
            result = list(reader())
        except Exception as exc:   # a source that fails must not stop the others
            if source not in self._source_errors:
                level = logging.WARNING if isinstance(exc, VigilError) else logging.ERROR
                log.log(level, "adoption source=%s failed: %s", source, exc,
                        exc_info=not isinstance(exc, VigilError))
                if source != "probe":
                    self._alert("warning", "poe:adoption", f"adoption:source:{source}",
                                f"PoE camera adoption cannot read the camera network's "
                                f"{source} ({exc}); cameras plugged in now may not be "
                                "found by themselves.", once=True)
            self._source_errors[source] = str(exc)
            return None
        if self._source_errors.pop(source, None) is not None:
            log.info("adoption source=%s readable again", source)
            self._active.discard(f"adoption:source:{source}")
        return result

    def _device_for(self, *, mac: str = "", ips: Sequence[str] = (),
                    endpoint: str = "") -> _Device:
        dev = None
        if mac:
            dev = next((d for d in self._devices if d.mac == mac), None)
        if dev is None and endpoint:
            dev = next((d for d in self._devices if d.endpoint == endpoint
                        and (not mac or not d.mac)), None)
        if dev is None:
            # a record without MAC (seen by probe only) at one of these addresses
            dev = next((d for d in self._devices if (not mac or not d.mac)
                        and any(ip in d.ips for ip in ips)), None)
        if dev is None:
            dev = _Device(self._next_id)
            self._next_id += 1
            self._devices.append(dev)
        if mac and not dev.mac:
            dev.mac = mac
        if endpoint and not dev.endpoint:
            dev.endpoint = endpoint
        for ip in ips:
            if mac:   # an address belongs to one MAC at a time
                for other in self._devices:
                    if other is not dev and ip in other.ips and other.mac != mac:
                        other.ips.remove(ip)
            dev.add_ip(ip)
        return dev

    def _merge_discovered(self, found: DiscoveredDevice) -> _Device | None:
        try:
            sender = str(ipaddress.ip_address(found.sender))
        except ValueError:
            return None
        by_ip = next((d for d in self._devices if sender in d.ips and d.mac), None)
        if by_ip is not None:
            dev = by_ip   # the neighbour table knows this address: its MAC, not the scope's
        else:
            dev = self._device_for(mac=normal_mac(found.mac or ""), ips=[sender],
                                   endpoint=found.endpoint)
        dev.add_ip(sender)
        dev.endpoint = dev.endpoint or found.endpoint
        # Only addresses on the host that answered: a device must not be able to point
        # the box at another camera (and so have that camera linked to its port).
        for xaddr in found.xaddrs:
            if xaddr.refused is None and xaddr.from_sender and xaddr.url not in dev.xaddrs:
                dev.xaddrs.append(xaddr.url)
        del dev.xaddrs[4:]
        dev.name = dev.name or (found.name or "")
        dev.hardware = dev.hardware or (found.hardware or "")
        return dev

    def _device(self, device_id: int) -> _Device | None:
        return next((d for d in self._devices if d.id == device_id), None)

    # --- the registry ---------------------------------------------------------------------
    def _cameras(self, quiet: bool = False) -> list[Camera] | None:
        try:
            cams = self.registry.cameras()
        except (DataLoss, OSError) as exc:
            if not quiet:
                self._alert("critical", "poe:adoption", "adoption:registry",
                            f"PoE camera adoption cannot read the camera list ({exc}).",
                            once=True)
            return None
        self._active.discard("adoption:registry")
        return cams

    @staticmethod
    def _matches(dev: _Device, cam: Camera) -> bool:
        if dev.mac and cam.mac:
            return normal_mac(cam.mac) == dev.mac
        if dev.endpoint and cam.endpoint:
            return dev.endpoint.lower() == cam.endpoint.lower()
        # Without a MAC in the registry, the address is the only clue (DHCP with per-MAC
        # leases keeps it); an endpoint that disagrees has already said no above.
        return not cam.mac and bool(cam.host) and cam.host in dev.ips

    def _known(self, dev: _Device, cams: list[Camera]) -> Camera | None:
        for cam in cams:
            if dev.mac and cam.mac and normal_mac(cam.mac) == dev.mac:
                return cam
        for cam in cams:
            if dev.endpoint and cam.endpoint and cam.endpoint.lower() == dev.endpoint.lower():
                return cam
        for cam in cams:
            if self._matches(dev, cam):
                return cam
        return None

    # --- attribution ----------------------------------------------------------------------
    def _resolve(self, now: float, cams: list[Camera]) -> None:
        min_boot = self.settings.min_boot_seconds
        matching: list[tuple[_Appearance, _Device, Camera | None]] = []
        for ap in sorted(self._pending, key=lambda a: a.at):
            dev = self._device(ap.device)
            if dev is None:
                continue
            known = self._known(dev, cams)
            cands = [w for w in self._windows if w.accepts(ap.at, min_boot)]
            if known is not None and known.poe_port:
                own = [w for w in cands if w.label == known.poe_port]
                if own:
                    # Back on its own port (a power cycle, the box restarting): MAC first.
                    own[0].claimed = "known"
                    dev.port = own[0].label
                    self._relink(dev, known, own[0].label)
                    continue
                if self._powered.get(known.poe_port):
                    # Its port stayed powered: it did not move, its entry just came back.
                    dev.port = known.poe_port
                    log.debug("adoption camera=%s seen again on %s", known.id, known.poe_port)
                    continue
            if not cands:
                self._outside(dev, known, late=any(w.covers(ap.at, min_boot)
                                                    for w in self._windows))
                continue
            matching.append((ap, dev, known))
        self._pending = []

        # A device whose only possible port is one window is that port's camera, unless
        # another device has the same single choice (then neither is).
        progress = True
        while progress and matching:
            progress = False
            singles: dict[int, list[tuple[_Appearance, _Device, Camera | None]]] = {}
            for entry in list(matching):
                cands = [w for w in self._windows if w.accepts(entry[0].at, min_boot)]
                if not cands:   # its windows went to other devices
                    matching.remove(entry)
                    self._outside(entry[1], entry[2], late=True)
                    progress = True
                elif len(cands) == 1:
                    singles.setdefault(id(cands[0]), []).append(entry)
            for entries in singles.values():
                win = next(w for w in self._windows
                           if w.accepts(entries[0][0].at, min_boot))
                for entry in entries:
                    matching.remove(entry)
                progress = True
                if len(entries) > 1:
                    win.claimed = "ambiguous"
                    self._ambiguous([win], [e[1] for e in entries])
                elif win.lost_at is not None:
                    win.claimed = "gone"   # it appeared, then its port lost power
                    self._force_absent(entries[0][1], win.lost_at)
                else:
                    win.claimed = "device"
                    self._attribute(entries[0][1], entries[0][2], win, now)

        # What is left could be on more than one port: decide when it can no longer
        # become clear (as many devices as ports, or every window closed); else wait.
        while matching:
            group = [matching.pop(0)]
            windows = {id(w): w for w in self._windows
                       if w.accepts(group[0][0].at, min_boot)}
            grew = True
            while grew:
                grew = False
                for entry in list(matching):
                    cands = [w for w in self._windows if w.accepts(entry[0].at, min_boot)]
                    if any(id(w) in windows for w in cands):
                        matching.remove(entry)
                        group.append(entry)
                        windows.update({id(w): w for w in cands})
                        grew = True
            wins = list(windows.values())
            if len(group) >= len(wins) or not any(w.alive(now) for w in wins):
                for win in wins:
                    win.claimed = "ambiguous"
                self._ambiguous(wins, [e[1] for e in group])
            else:
                self._pending.extend(e[0] for e in group)

    def _attribute(self, dev: _Device, known: Camera | None, win: _Window, now: float) -> None:
        dev.port = win.label
        log.info("adoption device=%s is on port=%d label=%r", dev.describe(), win.port,
                 win.label)
        if known is not None:
            self._relink(dev, known, win.label)
        elif not self.settings.auto_add:
            self._suggest(dev, win.label, "automatic adding is off (poe.adoption.auto_add)")
        elif len(self._jobs) >= MAX_JOBS:
            self._suggest(dev, win.label, "too many cameras are being added at once")
        else:
            self._jobs.append(_Job(dev.id, win.port, win.label, attributed=now, due=now))

    def _relink(self, dev: _Device, cam: Camera, label: str, xaddr: str = "") -> None:
        """Link a registered camera to the port. At a new address it moves there only once
        the device there proves, over ONVIF with the camera's own stored credentials, that
        it is that camera (rediscovery's rule: a MAC or a serial number is easily claimed,
        and a move sends the recorder there with the camera's password)."""
        ip = dev.ip
        target = ""
        if ip and cam.host and ip != cam.host:
            target = xaddr or (dev.xaddrs[0] if dev.xaddrs else "") or \
                (with_host(cam.xaddr, ip) if cam.xaddr else "")
            why = self.policy.refusal(ip)
            if why is None and not target:
                why = "it has no ONVIF address to confirm it by"
            if why is None:
                why = self._confirm_identity(cam, target)
            if why:
                self._hold(dev, cam, label, f"it is at {ip}, not {cam.host}, and did not "
                           f"prove it is the same camera: {why}")
                return
        try:
            if target:
                moved = self.registry.observe(replace(cam, host=ip, xaddr=target))
                if moved is not None and moved.host == ip:
                    log.info("adoption camera=%s moved from=%s to=%s", cam.id, cam.host, ip)
            if cam.poe_port == label:
                return
            self.registry.set_poe_port(cam.id, label)
        except (VigilError, OSError) as exc:
            self._alert("warning", f"poe:{label}", f"adoption:{label}:link_failed",
                        f"{label}: camera {cam.label} ({cam.id}) could not be linked to the "
                        f"port: {exc}")
            return
        before = f"it was on {cam.poe_port}" if cam.poe_port else "it had no port"
        log.info("adoption camera=%s linked to %s (%s)", cam.id, label, before)
        self._suggestions.pop(dev.id, None)
        self._outcome("linked", label, cam.id, dev, before)
        self._alert("info", f"poe:{label}", f"adoption:{label}:linked",
                    f"Camera {cam.label} ({cam.id}) is on {label} now ({before}).")

    def _confirm_identity(self, cam: Camera, xaddr: str) -> str | None:
        if self._confirm is None:
            from appliance.cameras.rediscover import OnvifConfirm
            self._confirm = OnvifConfirm(self.registry, self.policy)
        try:
            return self._confirm(cam, xaddr)
        except Exception as exc:   # the check failing is a "no", never a crash
            log.warning("adoption camera=%s identity check failed: %s", cam.id, exc)
            return f"the identity check failed ({exc})"

    def _hold(self, dev: _Device, cam: Camera, label: str, why: str) -> None:
        log.warning("adoption camera=%s not linked to %s: %s", cam.id, label, why)
        self._suggest(dev, label, f"looks like camera {cam.id} but {why}")
        self._outcome("held", label, cam.id, dev, why)
        self._alert("warning", f"poe:{label}", f"adoption:{label}:held",
                    f"{label}: a device ({dev.describe()}) looks like camera {cam.label} "
                    f"({cam.id}), but {why}. It was not linked and the camera's address was "
                    "not changed.")

    def _outside(self, dev: _Device, known: Camera | None, late: bool = False) -> None:
        if known is not None:
            log.info("adoption camera=%s appeared with no port powering up for it", known.id)
            return
        why = ("appeared when the port that powered up had its camera already" if late else
               "appeared while no port was powering up (not a camera on a PoE port, or "
               "one that took longer than poe.adoption.window_seconds to start)")
        log.info("adoption device=%s %s", dev.describe(), why)
        self._suggest(dev, "", why)
        self._outcome("ignored", "", "", dev, why)

    def _ambiguous(self, windows: list[_Window], devices: list[_Device]) -> None:
        labels = sorted({w.label for w in windows}, key=lambda s: (len(s), s))
        what = ", ".join(d.describe() for d in devices[:8]) + \
            (f" and {len(devices) - 8} more" if len(devices) > 8 else "")
        ports = " and ".join(labels)
        log.warning("adoption ambiguous ports=%s devices=%s", ports, what)
        for dev in devices:
            dev.port = ""
            self._suggest(dev, "", f"appeared while {ports} were powering up: which port it "
                          "is on cannot be told", ports=tuple(labels))
        self._outcome("ambiguous", ports, "", devices[0] if devices else None,
                      f"{len(devices)} device(s): {what}")
        self._alert("warning", "poe:adoption", f"adoption:ambiguous:{'+'.join(labels)}",
                    f"{ports} powered up close together and {len(devices)} device(s) "
                    f"appeared ({what}); which camera is on which port cannot be told, so "
                    "none was linked or added. Unplug them and plug them in one at a time, "
                    "a minute apart, or add them under Cameras and pick their port.")

    # --- onboarding -----------------------------------------------------------------------
    def _run_jobs(self, now: float) -> None:
        due = [j for j in self._jobs if j.due <= now][:MAX_JOBS_PER_STEP]
        for job in due:
            self._jobs.remove(job)
            try:
                self._adopt(job, now)
            except Exception:   # a camera error never kills the daemon
                log.exception("adoption port=%d failed", job.port)
                dev = self._device(job.device)
                if dev is not None:
                    self._suggest(dev, job.label, "adding it failed unexpectedly (see the log)")

    def _retry(self, job: _Job, now: float, why: str) -> bool:
        if now + self.settings.retry_seconds - job.attributed > self.settings.give_up_seconds:
            return False
        job.attempts += 1
        job.due = now + self.settings.retry_seconds
        self._jobs.append(job)
        log.info("adoption port=%d label=%r attempt=%d: %s; again in %.0f s", job.port,
                 job.label, job.attempts, why, self.settings.retry_seconds)
        return True

    def _adopt(self, job: _Job, now: float) -> None:
        dev = self._device(job.device)
        if dev is None or not self._powered.get(job.label) or dev.port != job.label:
            return
        label = job.label
        ip = dev.ip
        refusal = self.policy.refusal(ip) if ip else "it has no address yet"
        if refusal:
            # A camera that has only a link-local address may still get one from DHCP.
            if not self._retry(job, now, f"address not usable: {refusal}"):
                self._fail(dev, label, f"its address cannot be used: {refusal}. Cameras "
                           "must get an address in the camera network by DHCP.")
            return
        creds = self._get_credentials()
        if creds is None:
            self._needs_password(dev, label, "no default camera password is set", None)
            return
        xaddr = self._xaddr(dev)
        try:
            onboarded = self._onboard(xaddr, creds, self.policy,
                                      endpoint_reference=dev.endpoint or None,
                                      deadline_s=self.settings.onboard_deadline)
        except AuthFailed as exc:
            self._needs_password(dev, label, f"the default camera password was refused "
                                 f"({exc})", creds)
            return
        except AddressRefused as exc:
            self._fail(dev, label, str(exc), xaddr)
            return
        except Unavailable as exc:   # CameraUnreachable: its ONVIF service is not up yet
            if not self._retry(job, now, str(exc)):
                self._fail(dev, label, f"it does not answer ONVIF at {xaddr} ({exc})", xaddr)
            return
        except VigilError as exc:    # BadResponse, OperationFault, no H.264/H.265 stream
            self._fail(dev, label, str(exc), xaddr)
            return
        try:
            camera = from_onboarded(onboarded, f"port{job.port}", label)
            camera = replace(camera, poe_port=label, mac=camera.mac or dev.mac)
            self.policy.check_url(camera.main.uri, "stream")
        except VigilError as exc:
            self._fail(dev, label, str(exc), xaddr)
            return
        if onboarded.endpoint_reference:
            dev.endpoint = dev.endpoint or onboarded.endpoint_reference
        cams = self._cameras(quiet=True)
        if cams is None:
            self._fail(dev, label, "the camera list cannot be read", xaddr)
            return
        existing = next((c for c in cams if c.same_device(camera)), None)
        if existing is not None:   # known after all (serial or endpoint): link, not add
            self._relink(dev, existing, label, onboarded.xaddr)
            return
        self._add(dev, job, camera, creds, xaddr)

    def _add(self, dev: _Device, job: _Job, camera: Camera, creds: Credentials,
             xaddr: str) -> None:
        label = job.label
        base = f"port{job.port}"
        ids = [base] + [f"{base}-{n}" for n in range(2, MAX_ID_SUFFIX + 1)]
        for camera_id in ids:
            taken = {c.id for c in self._cameras(quiet=True) or []}
            if camera_id in taken:
                continue
            try:
                added = self.registry.add(replace(camera, id=camera_id), creds)
            except ResourceExhausted as exc:   # licence channels, incoming bandwidth
                self._suggest(dev, label, f"not added: {exc}", xaddr=xaddr)
                self._outcome("refused", label, "", dev, str(exc))
                self._alert("warning", f"poe:{label}", f"adoption:{label}:refused",
                            f"{label}: a camera ({camera.manufacturer} {camera.model}, "
                            f"{dev.describe()}) was found but not added: {exc}")
                return
            except FailedPrecondition as exc:
                if camera_id in {c.id for c in self._cameras(quiet=True) or []}:
                    continue   # someone took the name meanwhile: the next one
                self._fail(dev, label, str(exc), xaddr)
                return
            except (VigilError, OSError) as exc:
                self._fail(dev, label, f"the camera list cannot be changed ({exc})", xaddr)
                return
            self._suggestions.pop(dev.id, None)
            self._tried.pop(dev.id, None)
            what = " ".join(p for p in (added.manufacturer, added.model) if p) or "camera"
            log.info("adoption camera=%s added on %s model=%r serial=%r host=%s", added.id,
                     label, added.model, added.serial, added.host)
            self._outcome("adopted", label, added.id, dev, what)
            self._alert("info", f"poe:{label}", f"adoption:{label}:adopted",
                        f"{label}: {what} (serial {added.serial or 'unknown'}) was added as "
                        f"camera {added.id} \"{added.label}\".")
            if self.settings.rotate_password:
                self._rotate_password(added, label)
            return
        self._fail(dev, label, f"camera names {ids[0]}-{ids[-1]} are all taken", xaddr)

    def _rotate_password(self, cam: Camera, label: str) -> None:
        """Give the adopted camera a generated password of its own (rotation.py); the
        default one stays in use if that fails."""
        if self._rotator is None:
            from appliance.cameras.rotation import rotate_password as rotator
            self._rotator = rotator
        try:
            self._rotator(self.registry, cam.id, self.policy)
        except Exception as exc:   # the camera is added and works: only say so
            log.warning("adoption camera=%s password not replaced: %s", cam.id, exc)
            self._alert("warning", f"poe:{label}", f"adoption:{label}:rotation",
                        f"Camera {cam.id} was added with the default camera password, which "
                        f"stays in use; replacing it with a generated one failed: {exc}")
            return
        log.info("adoption camera=%s password replaced by a generated one", cam.id)

    def _xaddr(self, dev: _Device) -> str:
        if not dev.xaddrs and self._discover is not None and dev.ip:
            try:   # a unicast probe of this address: its XAddrs and endpoint
                for found in self._discover([dev.ip])[:MAX_PROBE_RESULTS]:
                    if found.sender == dev.ip:
                        self._merge_discovered(found)
            except Exception as exc:
                log.info("adoption device=%s unicast probe failed: %s", dev.describe(), exc)
        if dev.xaddrs:
            return dev.xaddrs[0]
        host = f"[{dev.ip}]" if ":" in dev.ip else dev.ip
        return f"http://{host}/onvif/device_service"   # ONVIF's well-known path

    def _get_credentials(self) -> Credentials | None:
        try:
            return self._credentials()
        except (VigilError, OSError) as exc:
            self._alert("warning", "poe:adoption", "adoption:credentials",
                        f"The default camera password cannot be read ({exc}); set it again.",
                        once=True)
            return None

    def _needs_password(self, dev: _Device, label: str, why: str,
                        tried: Credentials | None) -> None:
        self._tried[dev.id] = _fingerprint(tried)
        self._suggest(dev, label, f"needs its password: {why}", needs_credentials=True)
        self._outcome("suggested", label, "", dev, why)
        self._alert("warning", f"poe:{label}", f"adoption:{label}:needs_password",
                    f"Found a camera on {label} ({dev.describe()}); it needs its password "
                    f"({why}). Set the default camera password, or add it under Cameras.")

    def _fail(self, dev: _Device, label: str, why: str, xaddr: str = "") -> None:
        log.warning("adoption port=%r device=%s not added: %s", label, dev.describe(), why)
        self._suggest(dev, label, f"not added: {why}", xaddr=xaddr)
        self._outcome("suggested", label, "", dev, why)
        self._alert("warning", f"poe:{label}", f"adoption:{label}:failed",
                    f"Found a device on {label} ({dev.describe()}) but could not add it: {why}")

    # --- suggestions ----------------------------------------------------------------------
    def _suggest(self, dev: _Device, port: str, reason: str, *, ports: tuple[str, ...] = (),
                 needs_credentials: bool = False, xaddr: str = "") -> None:
        self._suggestions.pop(dev.id, None)
        self._suggestions[dev.id] = Suggestion(
            dev.ip, dev.mac, port, ports, reason, needs_credentials,
            xaddr or (dev.xaddrs[0] if dev.xaddrs else ""), dev.endpoint, dev.name,
            dev.hardware, self.clock.wall())
        while len(self._suggestions) > MAX_SUGGESTIONS:
            self._suggestions.popitem(last=False)

    def _follow_up(self, now: float, cams: list[Camera]) -> None:
        """Suggestions with a port: link the camera once the owner added it by hand, and
        try again when the default password changed since it was refused (or set)."""
        creds_checked = False
        creds = None
        for dev_id, sug in list(self._suggestions.items()):
            if not sug.port or not self._powered.get(sug.port):
                continue
            dev = self._device(dev_id)
            if dev is None or dev.port != sug.port:
                continue
            known = self._known(dev, cams)
            if known is not None:
                # Added by hand at this address and not linked yet: link it. (Linked
                # elsewhere, or at another address, is what the suggestion says.)
                if not known.poe_port and known.host in dev.ips:
                    del self._suggestions[dev_id]
                    self._relink(dev, known, sug.port)
                continue
            if sug.needs_credentials and dev.present:
                if not creds_checked:
                    creds, creds_checked = self._get_credentials(), True
                if creds is not None and _fingerprint(creds) != self._tried.get(dev_id) \
                        and len(self._jobs) < MAX_JOBS:
                    del self._suggestions[dev_id]
                    port = self._port_numbers.get(sug.port, 0)
                    self._jobs.append(_Job(dev_id, port, sug.port, attributed=now, due=now))
                    log.info("adoption port=%r default password changed: trying %s again",
                             sug.port, dev.describe())

    # --- housekeeping ---------------------------------------------------------------------
    def _expire(self, now: float) -> None:
        min_boot = self.settings.min_boot_seconds
        keep = []
        for win in self._windows:
            referenced = any(win.accepts(ap.at, min_boot) for ap in self._pending)
            if referenced or (win.lost_at is None and now <= win.closes):
                keep.append(win)
            elif not win.claimed and win.lost_at is None:
                log.info("adoption port=%d label=%r: no new device appeared within %.0f s of "
                         "power-up", win.port, win.label, self.settings.window_seconds)
        self._windows = keep

    def _evict(self, now: float) -> None:
        busy = {ap.device for ap in self._pending} | {j.device for j in self._jobs} | \
            set(self._suggestions)
        self._devices = [d for d in self._devices if d.present or d.id in busy
                         or now - d.last_seen < FORGET_ABSENT_S]
        if len(self._devices) > MAX_DEVICES:
            absent = sorted((d for d in self._devices if not d.present and d.id not in busy),
                            key=lambda d: d.last_seen)
            drop = {d.id for d in absent[:len(self._devices) - MAX_DEVICES]}
            self._devices = [d for d in self._devices if d.id not in drop]

    # --- output ---------------------------------------------------------------------------
    def _alert(self, severity: str, source: str, key: str, message: str,
               once: bool = False) -> None:
        """Raise an alert; with `once`, not again until the condition is cleared."""
        if once:
            if key in self._active:
                return
            self._active.add(key)
        log.warning("adoption alert severity=%s key=%s: %s", severity, key, message) \
            if severity != "info" else log.info("adoption alert key=%s: %s", key, message)
        self._alerts.append(Alert(severity=severity, source=source, message=message, key=key))

    def _outcome(self, kind: str, label: str, camera_id: str, dev: _Device | None,
                 detail: str) -> None:
        self.recent.append(Outcome(kind, label, camera_id, dev.ip if dev else "",
                                   dev.mac if dev else "", detail, self.clock.wall()))

    def _build_snapshot(self, now: float) -> dict[str, Any]:
        return {
            "time": self.clock.wall(),
            "windows": [{"port": w.port, "label": w.label,
                         "closes_in": round(max(0.0, w.closes - now), 1)}
                        for w in self._windows if w.alive(now)],
            "waiting": len(self._pending),
            "adding": [{"label": j.label, "device": (d.describe() if (d := self._device(
                j.device)) else ""), "attempts": j.attempts} for j in self._jobs],
            "suggestions": [s.to_json() for s in self._suggestions.values()],
            "recent": [o.to_json() for o in list(self.recent)[-20:]],
            "sources": {name: self._source_errors.get(name, "ok") for name, reader in
                        (("neighbours", self._neighbours), ("leases", self._leases),
                         ("probe", self._discover)) if reader is not None},
        }


# --- running it ----------------------------------------------------------------------------

class AdoptionService:
    """The adopter's thread: a step whenever a power change arrives or the next scan is
    due, and its snapshot written (atomically) to `<state>/adoption.json`."""

    def __init__(self, adopter: PortAdopter, state_dir: Path | None = None) -> None:
        self.adopter = adopter
        self.state_dir = state_dir
        self.stop = threading.Event()
        self._wake = threading.Event()
        adopter.wake = self._wake.set
        self._thread = threading.Thread(target=self._run, name="poe-adoption", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self.stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.adopter.step()
                if self.state_dir is not None:
                    write_snapshot(self.state_dir, self.adopter.snapshot())
            except Exception:   # one bad step must not end adoption
                log.exception("adoption step failed")
            self._wake.wait(self.adopter.next_wait())
            self._wake.clear()


def write_snapshot(state_dir: Path, data: dict[str, Any]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / (SNAPSHOT_NAME + ".tmp")
    tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
    os.replace(tmp, state_dir / SNAPSHOT_NAME)


def onvif_discover(policy: AddressPolicy, *, timeout: float = 2.0, interface: str | None = None,
                   multicast: bool = True, port: int = 3702) -> Discover:
    """The production `discover`: a multicast WS-Discovery probe from the camera
    interface's address when called with no addresses, else a unicast probe of them."""
    from appliance.cameras.onvif import probe

    def discover(addresses: Sequence[str] = ()) -> list[DiscoveredDevice]:
        if not addresses and not multicast:
            return []
        return probe(policy, timeout=timeout, addresses=list(addresses),
                     multicast=not addresses, interface=interface, port=port)
    return discover


def interface_ipv4(name: str) -> str | None:
    """The first IPv4 address of a network interface (None if it has none)."""
    import socket

    try:
        import psutil
    except ImportError:
        return None
    for addr in psutil.net_if_addrs().get(name, []):
        if addr.family == socket.AF_INET:
            return addr.address
    return None


def build_adopter(manager, registry: CameraRegistry, settings: AdoptionSettings, *,
                  defaults: CredentialStore | None = None,
                  alert_sink: Callable[[list[Alert]], None] | None = None,
                  clock: Clock | None = None) -> PortAdopter:
    """The adopter for vigil-hwd: the board's camera interface (neighbour table, and
    WS-Discovery from its address), the lease file if set, the owner's default camera
    credentials (`defaults`, by default the store on DEFAULT_CREDENTIALS_DIR);
    registered as the manager's power listener."""
    from appliance.poe.neighbours import LeaseFile, NeighbourTable

    iface = manager.layout.camera_interface
    policy = AddressPolicy.for_this_host(registry.settings.networks())
    address = interface_ipv4(iface)
    discover = None
    if settings.probe_interval > 0:
        # Multicast only from the camera interface's address: never probe the owner's LAN.
        discover = onvif_discover(policy, timeout=settings.probe_seconds, interface=address,
                                  multicast=address is not None)
    adopter = PortAdopter(
        registry, policy, settings=settings, clock=clock, neighbours=NeighbourTable(iface),
        leases=LeaseFile(Path(settings.lease_file)) if settings.lease_file else None,
        discover=discover,
        credentials=default_credentials(defaults or CredentialStore(DEFAULT_CREDENTIALS_DIR)),
        alert_sink=alert_sink)
    manager.add_power_listener(adopter.on_power_change)
    return adopter
