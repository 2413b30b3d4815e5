"""The PoE manager of vigil-hwd: port states, the power budget, faults, power cycles, alerts.

It drives the PSE chips in **semi-auto** mode: the chip detects and classifies by itself,
the manager decides who gets power (that is where the budget and priorities are
enforced) and switches it on. Each `poll()` reads every chip once (latched events first,
then status and measurements), updates each port's state, admits waiting ports in order
of precedence, sheds ports when the draw exceeds the budget, and returns the alerts that
are new. Nothing here sleeps; `run()` is the loop with the injected clock.

Port states (PortState):
    disabled   switched off by the owner, or off during a power cycle
    searching  no PoE device found (nothing plugged, or a non-PoE device)
    detected   a valid PoE signature, class not known yet
    classified class known; waiting for power (denied by the budget: `denied` is set)
    powered    power good: the camera is getting power
    fault      overload, short, start fault, over-temperature, supply drop; retried after
               `fault_retry` seconds (a short is retried only once detection stops seeing it)
A poll that finds a port further along (e.g. detected and classified since the previous
read) records every state it went through, in order.

Hooks for the rest of the appliance: `add_power_listener(fn)` is called with a
`PowerChange` whenever a port starts or stops delivering power (label, class, time), and
`request_power_cycle(port, reason)` is the stall-recovery entry point, bounded by
`CyclePolicy`. Listeners and the alert sink are called after the manager's lock is
released, so they may call back into it.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from appliance.core.clock import Clock, RealClock
from appliance.core.errors import FailedPrecondition, InvalidConfig, Unavailable
from appliance.poe import budget
from appliance.poe.cycles import CycleDecision, CyclePolicy
from appliance.poe.settings import PoeConfig
from appliance.storage.alerts import Alert
from hw.board import BoardProfileError
from hw.pse.board import PortSpec, PseLayout, build_controllers, parse_pse
from hw.pse.interface import (ChipEvents, ChipStatus, ClassResult, Detection, Fault,
                              PortEvents, PortMode, PortStatus, PseBusError, PseController,
                              PseError, PseIdentityError, SMBusLike)

log = logging.getLogger(__name__)

POE_PLUS_MIN_W = 25.5        # a port allowed this much runs the 802.3at (2x ILIM) curve
TEMPERATURE_HYSTERESIS_C = 10.0
VOLTAGE_HYSTERESIS_V = 1.0
HISTORY = 64


class PortState(enum.Enum):
    DISABLED = "disabled"
    SEARCHING = "searching"
    DETECTED = "detected"
    CLASSIFIED = "classified"
    POWERED = "powered"
    FAULT = "fault"


# The path a port takes from nothing to power; a poll that skips ahead records the steps.
ORDER = (PortState.SEARCHING, PortState.DETECTED, PortState.CLASSIFIED, PortState.POWERED)


@dataclass(frozen=True)
class PowerChange:
    """A port started (`powered`) or stopped delivering power."""

    port: int
    label: str
    powered: bool
    pd_class: int | None
    wall_time: float
    monotonic: float
    reason: str = ""


@dataclass
class PortRecord:
    spec: PortSpec
    chip: int
    enabled: bool
    priority: str
    state: PortState = PortState.SEARCHING
    detail: str = ""
    detection: Detection = Detection.UNKNOWN
    class_result: ClassResult = ClassResult.UNKNOWN
    voltage_v: float | None = None
    current_ma: float | None = None
    power_enabled: bool = False
    power_good: bool = False
    granted: bool = False              # we switched power on and it has not gone away
    denied: bool = False               # classified but refused by the budget
    deny_reason: str = ""
    faults: set[str] = field(default_factory=set)
    fault_until: float | None = None
    cycling_until: float | None = None
    cycle_reason: str = ""
    had_fault: bool = False            # alert "fault cleared" when power comes back
    stale: bool = False                # the chip did not answer the last poll
    notes: tuple[str, ...] = ()        # impossible readings last seen (logged on change)
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))

    @property
    def number(self) -> int:
        return self.spec.number

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def pd_class(self) -> int | None:
        return self.class_result.pd_class

    @property
    def power_w(self) -> float:
        if not self.power_good or self.voltage_v is None or self.current_ma is None:
            return 0.0
        return self.voltage_v * self.current_ma / 1000.0

    @property
    def allocation_w(self) -> float:
        return budget.class_allocation_w(self.pd_class, self.spec.max_w)


@dataclass
class ChipRecord:
    index: int
    controller: PseController
    address: int
    opened: bool = False
    failed: str = ""                   # why the chip is not usable right now
    wrong_part: bool = False           # identity check failed: not retried
    temperature_c: float | None = None
    input_voltage_v: float | None = None
    hold: str = ""                     # "thermal" / "supply": ports held off by the chip state
    hold_until: float = 0.0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoeSnapshot:
    time: float
    budget_w: float
    budget_policy: str
    allocated_w: float
    measured_w: float
    input_voltage_v: float | None
    chips: tuple[dict, ...]
    ports: tuple[dict, ...]

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "budget_w": self.budget_w, "budget_policy": self.budget_policy,
                "allocated_w": round(self.allocated_w, 2), "measured_w": round(self.measured_w, 2),
                "input_voltage_v": self.input_voltage_v, "chips": list(self.chips),
                "ports": list(self.ports)}


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


class PoeManager:
    def __init__(self, layout: PseLayout, controllers: Sequence[PseController], *,
                 config: PoeConfig | None = None, clock: Clock | None = None,
                 alert_sink: Callable[[list[Alert]], None] | None = None) -> None:
        if len(controllers) != len(layout.chips):
            raise InvalidConfig(f"{len(layout.chips)} PSE chips in the profile but "
                                f"{len(controllers)} controllers given")
        self.layout = layout
        self.config = config or PoeConfig()
        self.settings = self.config.settings
        self.config.check_ports({p.number: p.label for p in layout.ports})
        if self.settings.budget_w > layout.total_budget_w:
            raise InvalidConfig(f"poe.budget_w: {self.settings.budget_w} W is above what the "
                                f"board's supply gives ({layout.total_budget_w} W)")
        self.budget_w = self.settings.budget_w or layout.total_budget_w
        self.clock = clock or RealClock()
        self.alert_sink = alert_sink
        self.cycles = CyclePolicy(self.clock, self.settings.max_cycles_per_hour)
        self.chips = [ChipRecord(index=i, controller=c, address=layout.chips[i].address)
                      for i, c in enumerate(controllers)]
        self.ports: list[PortRecord] = []
        for spec in layout.ports:
            ps = self.config.port(spec.number, spec.label)
            rec = PortRecord(spec=spec, chip=spec.chip, enabled=ps.enabled,
                             priority=ps.priority or self.settings.default_priority)
            if not rec.enabled:
                rec.state = PortState.DISABLED
            rec.history.append((self.clock.monotonic(), rec.state))
            self.ports.append(rec)
        self._listeners: list[Callable[[PowerChange], None]] = []
        self._lock = threading.RLock()
        self._active: dict[str, Alert] = {}      # condition key -> alert raised for it
        self._alerts: list[Alert] = []           # raised during the current call
        self._changes: list[PowerChange] = []    # power changes during the current call
        self.recent_alerts: deque[tuple[float, Alert]] = deque(maxlen=200)
        self._started = False

    @classmethod
    def from_profile(cls, profile: Mapping[str, Any], bus: SMBusLike, *,
                     source: str = "board profile", **kwargs: Any) -> "PoeManager":
        """The manager for a parsed board profile's [pse] section, on an open bus."""
        try:
            layout = parse_pse(profile, source=source)
        except BoardProfileError as exc:
            raise InvalidConfig(str(exc)) from exc
        return cls(layout, build_controllers(layout, bus), **kwargs)

    # --- hooks ----------------------------------------------------------------------------
    def add_power_listener(self, listener: Callable[[PowerChange], None]) -> None:
        self._listeners.append(listener)

    def _deliver(self, alerts: list[Alert], changes: list[PowerChange]) -> list[Alert]:
        """Hand out what one call produced: alerts to the sink, power changes to listeners."""
        if alerts and self.alert_sink is not None:
            try:
                self.alert_sink(alerts)
            except Exception:   # a broken sink must not stop PoE management
                log.exception("poe alert sink failed")
        for change in changes:
            for listener in list(self._listeners):
                try:
                    listener(change)
                except Exception:
                    log.exception("poe power listener failed port=%d", change.port)
        return alerts

    def _call(self, fn: Callable[[], Any]) -> tuple[Any, list[Alert]]:
        with self._lock:
            result = fn()
            alerts, changes = self._alerts, self._changes
            self._alerts, self._changes = [], []
        return result, self._deliver(alerts, changes)

    # --- alerts ---------------------------------------------------------------------------
    def _raise(self, key: str, severity: str, source: str, message: str) -> None:
        """Alert once per condition: nothing while `key` is still active."""
        if key in self._active:
            return
        alert = Alert(severity=severity, source=source, message=message, key=key)
        self._active[key] = alert
        self._emit(alert)

    def _clear(self, key: str, message: str | None = None) -> None:
        alert = self._active.pop(key, None)
        if alert is not None and message:
            self._emit(Alert(severity="info", source=alert.source, message=message,
                             key=key + ":cleared"))

    def _emit(self, alert: Alert) -> None:
        log.warning("poe alert severity=%s source=%s key=%s: %s", alert.severity, alert.source,
                    alert.key, alert.message)
        self._alerts.append(alert)
        self.recent_alerts.append((self.clock.wall(), alert))

    def active_alerts(self) -> list[Alert]:
        with self._lock:
            return list(self._active.values())

    # --- state bookkeeping ----------------------------------------------------------------
    def _set_state(self, rec: PortRecord, state: PortState, detail: str = "") -> None:
        now = self.clock.monotonic()
        rec.detail = detail
        if state is rec.state:
            return
        steps = [state]
        if rec.state in ORDER and state in ORDER and ORDER.index(state) > ORDER.index(rec.state):
            steps = list(ORDER[ORDER.index(rec.state) + 1:ORDER.index(state) + 1])
        was_powered = rec.state is PortState.POWERED
        for step in steps:
            rec.history.append((now, step))
        log.info("poe port=%d label=%r state=%s->%s class=%s %s", rec.number, rec.label,
                 rec.state.value, state.value, rec.pd_class, detail)
        rec.state = state
        if state is PortState.POWERED and not was_powered:
            self._power_change(rec, True, detail or "power good")
        elif was_powered and state is not PortState.POWERED:
            self._power_change(rec, False, detail or state.value)

    def _power_change(self, rec: PortRecord, powered: bool, reason: str) -> None:
        self._changes.append(PowerChange(port=rec.number, label=rec.label, powered=powered,
                                         pd_class=rec.pd_class, wall_time=self.clock.wall(),
                                         monotonic=self.clock.monotonic(), reason=reason))

    def _port(self, port: int) -> PortRecord:
        if not 1 <= port <= len(self.ports):
            raise ValueError(f"no PoE port {port} (ports 1-{len(self.ports)})")
        return self.ports[port - 1]

    def _ctl(self, rec: PortRecord) -> PseController:
        return self.chips[rec.chip].controller

    def _apply_port_config(self, rec: PortRecord) -> None:
        ctl, ch = self._ctl(rec), rec.spec.channel
        if rec.enabled and rec.cycling_until is None:
            ctl.configure_port(ch, PortMode.SEMI_AUTO, detect=True, classify=True,
                               disconnect=True, poe_plus=rec.spec.max_w >= POE_PLUS_MIN_W)
        else:
            ctl.configure_port(ch, PortMode.OFF, detect=False, classify=False,
                               disconnect=True, poe_plus=rec.spec.max_w >= POE_PLUS_MIN_W)

    def _config_drifted(self, rec: PortRecord, st: PortStatus) -> bool:
        if rec.enabled and rec.cycling_until is None:
            return not (st.mode is PortMode.SEMI_AUTO and st.detect_enabled
                        and st.class_enabled and st.disconnect_enabled)
        return st.mode is not PortMode.OFF

    # --- chips ----------------------------------------------------------------------------
    def start(self) -> list[Alert]:
        """Open and configure every chip (the first poll does this too)."""
        return self._call(self._start)[1]

    def _start(self) -> None:
        self._started = True
        for chip in self.chips:
            self._open_chip(chip)

    def _chip_source(self, chip: ChipRecord) -> str:
        return f"poe:0x{chip.address:02X}"

    def _chip_ports(self, chip: ChipRecord) -> list[PortRecord]:
        return [p for p in self.ports if p.chip == chip.index]

    def _open_chip(self, chip: ChipRecord) -> bool:
        if chip.wrong_part:
            return False
        ctl = chip.controller
        try:
            info = ctl.open()
            for rec in self._chip_ports(chip):
                self._apply_port_config(rec)
        except PseIdentityError as exc:
            chip.wrong_part, chip.failed = True, str(exc)
            self._raise(f"poe:0x{chip.address:02X}:identity", "critical",
                        self._chip_source(chip), f"PoE controller missing or wrong: {exc}. "
                        f"Ports {self._port_range(chip)} get no power.")
            self._mark_chip_down(chip, "controller is not a TPS23861")
            return False
        except PseBusError as exc:
            self._chip_failed(chip, exc)
            return False
        chip.opened = True
        if chip.failed:
            chip.failed = ""
        self._clear(f"poe:0x{chip.address:02X}:bus",
                    f"PoE controller {ctl.name} answers again.")
        if info.came_up_in_auto:
            log.info("poe chip=%s came up in auto mode; switched to semi-auto", ctl.name)
        return True

    def _port_range(self, chip: ChipRecord) -> str:
        ports = self._chip_ports(chip)
        return f"{ports[0].label}-{ports[-1].label}" if ports else "(none)"

    def _chip_failed(self, chip: ChipRecord, exc: PseError) -> None:
        first = not chip.failed
        chip.failed = str(exc)
        if first:
            log.error("poe chip=%s not answering: %s", chip.controller.name, exc)
        self._raise(f"poe:0x{chip.address:02X}:bus", "critical", self._chip_source(chip),
                    f"PoE controller not answering ({exc}); ports {self._port_range(chip)} "
                    "keep whatever power they had but are not managed. Retrying every poll.")
        self._mark_chip_down(chip, "controller not answering")

    def _mark_chip_down(self, chip: ChipRecord, why: str) -> None:
        for rec in self._chip_ports(chip):
            rec.stale = True
            rec.detail = why
            if chip.wrong_part:
                rec.faults.add("controller")
                self._set_state(rec, PortState.FAULT, why)

    # --- the poll -------------------------------------------------------------------------
    def poll(self) -> list[Alert]:
        """Read every chip once and act on what changed; returns the new alerts."""
        return self._call(self._poll)[1]

    def _poll(self) -> None:
        if not self._started:
            self._start()
        now = self.clock.monotonic()
        for chip in self.chips:
            if chip.wrong_part:
                continue
            if not chip.opened and not self._open_chip(chip):
                continue
            try:
                events = chip.controller.read_events()
                status = chip.controller.status()
            except PseBusError as exc:
                # The driver keeps the events it did read for the next call, and the chip
                # keeps its registers: no re-open (and no CLRAIN) after a transient error.
                self._chip_failed(chip, exc)
                continue
            if chip.failed:
                chip.failed = ""
                log.info("poe chip=%s answering again", chip.controller.name)
                self._clear(f"poe:0x{chip.address:02X}:bus",
                            f"PoE controller {chip.controller.name} answers again.")
            self._chip_update(chip, events, status, now)
        self._check_supply()
        self._admit(now)
        self._enforce_budget()

    def _chip_update(self, chip: ChipRecord, ev: ChipEvents, st: ChipStatus, now: float) -> None:
        ctl = chip.controller
        chip.temperature_c, chip.input_voltage_v = st.temperature_c, st.input_voltage_v
        if st.notes != chip.notes:
            chip.notes = st.notes
            for note in st.notes:
                log.warning("poe chip=%s %s", ctl.name, note)
        ports = self._chip_ports(chip)
        for rec in ports:
            rec.stale = False
        if ev.vdd_undervoltage:
            # Power-on reset: every register is back to its default (Auto mode if the
            # AUTO bit is set). Set the chip up again before trusting anything else.
            self._raise(f"poe:0x{chip.address:02X}:reset", "warning", self._chip_source(chip),
                        f"PoE controller {ctl.name} restarted (its 3.3 V supply dipped); "
                        "its ports were set up again.")
            chip.opened = False
            if not self._open_chip(chip):
                return
        else:
            self._clear(f"poe:0x{chip.address:02X}:reset")
        source = self._chip_source(chip)
        if ev.thermal_shutdown:
            self._raise(f"poe:0x{chip.address:02X}:thermal", "critical", source,
                        f"PoE controller {ctl.name} overheated ({st.temperature_c:.0f} C) and cut "
                        f"power to {self._port_range(chip)}; they are retried when it cools "
                        "down. Check the ventilation and the total PoE load.")
            self._hold_chip(chip, "thermal", Fault.THERMAL, now)
        if ev.supply_undervoltage:
            vin = st.input_voltage_v
            self._raise("poe:supply:undervoltage", "critical", "poe:supply",
                        f"The PoE supply dropped to {vin:.1f} V and {ctl.name} switched off "
                        f"{self._port_range(chip)}. Check the 48-57 V power supply.")
            self._hold_chip(chip, "supply", Fault.SUPPLY_UNDERVOLTAGE, now)
        temp = st.temperature_c
        if ev.thermal_shutdown or chip.hold == "thermal":
            pass   # the thermal alert above says it all
        elif temp is not None and temp > self.settings.temperature_alert_c:
            self._raise(f"poe:0x{chip.address:02X}:hot", "warning", source,
                        f"PoE controller {ctl.name} is at {temp:.0f} C (alert above "
                        f"{self.settings.temperature_alert_c:.0f} C); check the ventilation.")
        if not ev.thermal_shutdown and temp is not None \
                and temp < self.settings.temperature_alert_c - TEMPERATURE_HYSTERESIS_C:
            message = f"PoE controller {ctl.name} cooled down to {temp:.0f} C."
            if f"poe:0x{chip.address:02X}:thermal" in self._active:
                self._clear(f"poe:0x{chip.address:02X}:thermal", message)
                message = None
            self._clear(f"poe:0x{chip.address:02X}:hot", message)
        if chip.hold and now >= chip.hold_until and self._hold_over(chip, st):
            log.info("poe chip=%s hold=%s over", ctl.name, chip.hold)
            chip.hold = ""
        error = None
        for rec, pst in zip(ports, st.ports):
            try:
                self._port_update(rec, ev.port(rec.spec.channel), pst, now, chip)
            except PseBusError as exc:
                # A command failed: keep going, so every port's events are still acted on.
                error = exc
        if error is not None:
            self._chip_failed(chip, error)

    def _hold_chip(self, chip: ChipRecord, why: str, fault: Fault, now: float) -> None:
        chip.hold, chip.hold_until = why, now + self.settings.fault_retry
        for rec in self._chip_ports(chip):
            if rec.state is PortState.DISABLED:
                continue
            rec.granted = False
            rec.faults.add(fault.value)
            rec.had_fault = True
            rec.fault_until = chip.hold_until
            self._set_state(rec, PortState.FAULT, fault.value)

    def _hold_over(self, chip: ChipRecord, st: ChipStatus) -> bool:
        if chip.hold == "thermal":
            return st.temperature_c is not None and \
                st.temperature_c < self.settings.temperature_alert_c - TEMPERATURE_HYSTERESIS_C
        if chip.hold == "supply":
            return st.input_voltage_v is not None and \
                st.input_voltage_v >= self.settings.min_input_voltage
        return True

    def _port_update(self, rec: PortRecord, ev: PortEvents, st: PortStatus, now: float,
                     chip: ChipRecord) -> None:
        ctl, ch = chip.controller, rec.spec.channel
        rec.detection, rec.class_result = st.detection, st.class_result
        rec.voltage_v, rec.current_ma = st.voltage_v, st.current_ma
        rec.power_enabled, rec.power_good = st.power_enabled, st.power_good
        if st.notes != rec.notes:
            rec.notes = st.notes
            for note in st.notes:
                log.warning("poe port=%d label=%r %s", rec.number, rec.label, note)

        if not rec.enabled or rec.cycling_until is not None:
            if rec.cycling_until is not None and now >= rec.cycling_until:
                self._end_cycle(rec)
                return
            if self._config_drifted(rec, st) or st.power_enabled:
                self._apply_port_config(rec)
                ctl.power_off(ch)
            return
        if self._config_drifted(rec, st) and not chip.hold:
            log.warning("poe port=%d label=%r configuration lost (mode=%s detect=%s): "
                        "re-applied", rec.number, rec.label, st.mode.value, st.detect_enabled)
            self._apply_port_config(rec)

        fault = self._event_fault(rec, ev, st)
        if fault is not None:
            self._enter_fault(rec, fault, now)
            return
        if chip.hold:
            return
        if rec.state is PortState.FAULT:
            found = {Detection.SHORT: Fault.SHORT,
                     Detection.MOSFET_FAULT: Fault.MOSFET}.get(st.detection)
            if found is not None:
                # Detection still sees it: name it (once) and keep the port off.
                if found.value not in rec.faults:
                    self._enter_fault(rec, found, now)
                rec.fault_until = now + self.settings.fault_retry
                return
            if rec.fault_until is not None and now < rec.fault_until:
                return
            rec.faults.clear()
            rec.fault_until = None
            ctl.restart_detection(ch)
            self._set_state(rec, PortState.SEARCHING, "retrying after fault")
            return

        if st.power_good:
            rec.granted, rec.denied, rec.deny_reason = True, False, ""
            self._set_state(rec, PortState.POWERED)
            self._powered_again(rec)
            return
        if st.power_enabled:
            rec.granted = True
            self._set_state(rec, PortState.CLASSIFIED, "powering on")
            return
        was_powered = rec.state is PortState.POWERED
        rec.granted = False
        if st.detection is Detection.SHORT:
            self._enter_fault(rec, Fault.SHORT, now)
        elif st.detection is Detection.MOSFET_FAULT:
            self._enter_fault(rec, Fault.MOSFET, now)
        elif was_powered and not ev.disconnect and st.detection is Detection.VALID:
            # Power went away without a fault event or an unplug (someone else switched it
            # off, or an event was lost): treat it as searching again.
            self._set_state(rec, PortState.SEARCHING, "power lost")
        elif st.detection is Detection.VALID:
            if st.class_result is ClassResult.OVERCURRENT:
                self._enter_fault(rec, Fault.CLASS_OVERCURRENT, now)
            elif st.class_result.pd_class is not None or st.class_result is ClassResult.RESERVED:
                detail = "denied" if rec.denied else ""
                if st.class_result is ClassResult.RESERVED:
                    detail = "reserved class code, counted as class 0"
                self._set_state(rec, PortState.CLASSIFIED, detail)
            elif st.class_result is ClassResult.UNKNOWN:
                self._set_state(rec, PortState.DETECTED)
            else:   # mismatch or an undefined code: wait for the next classification
                self._set_state(rec, PortState.DETECTED,
                                f"class unreadable ({st.class_result.value}, code {st.class_code})")
        else:
            rec.denied, rec.deny_reason = False, ""
            self._clear(f"poe:{rec.label}:budget")
            detail = "" if st.detection in (Detection.OPEN, Detection.UNKNOWN) \
                else f"detection: {st.detection.value}"
            self._set_state(rec, PortState.SEARCHING,
                            "unplugged" if ev.disconnect else detail)

    def _event_fault(self, rec: PortRecord, ev: PortEvents, st: PortStatus) -> Fault | None:
        if ev.current_limit:
            return Fault.SHORT if st.detection is Detection.SHORT else Fault.CURRENT_LIMIT
        if ev.overload:
            return Fault.OVERLOAD
        if ev.start_fault:
            return Fault.START_FAULT
        return None

    FAULT_ALERTS = {
        Fault.OVERLOAD: ("warning", "the camera drew more power than its class allows and the "
                         "port was switched off; it is retried in {retry:.0f} s. If it repeats, "
                         "check the camera (heater, IR) and its class."),
        Fault.CURRENT_LIMIT: ("critical", "the port hit its current limit (a near short) and was "
                              "switched off; it is retried in {retry:.0f} s. Check the cable."),
        Fault.SHORT: ("critical", "short circuit on the cable or the camera; the port stays off "
                      "until the short is gone. Check the cable and its connectors."),
        Fault.START_FAULT: ("warning", "the camera did not power up (inrush fault); retried in "
                            "{retry:.0f} s."),
        Fault.CLASS_OVERCURRENT: ("warning", "the device drew too much current during "
                                  "classification and is not powered; it may not be a PoE "
                                  "camera."),
        Fault.MOSFET: ("critical", "the port's power switch reports a fault; the port is not "
                       "used. The unit needs service."),
    }

    def _enter_fault(self, rec: PortRecord, fault: Fault, now: float) -> None:
        rec.granted = False
        rec.faults.add(fault.value)
        rec.had_fault = True
        rec.fault_until = now + self.settings.fault_retry
        severity, text = self.FAULT_ALERTS[fault]
        self._raise(f"poe:{rec.label}:{fault.value}", severity, f"poe:{rec.label}",
                    f"{rec.label}: " + text.format(retry=self.settings.fault_retry))
        self._set_state(rec, PortState.FAULT, fault.value)

    def _powered_again(self, rec: PortRecord) -> None:
        if rec.had_fault:
            rec.had_fault = False
            for key in [k for k in self._active if k.startswith(f"poe:{rec.label}:")]:
                self._active.pop(key)
            self._emit(Alert(severity="info", source=f"poe:{rec.label}",
                             message=f"{rec.label}: fault cleared, the camera is powered again.",
                             key=f"poe:{rec.label}:fault_cleared"))
        if f"poe:{rec.label}:budget" in self._active:
            self._clear(f"poe:{rec.label}:budget", f"{rec.label}: power restored "
                        "(the budget has room again).")

    def _check_supply(self) -> None:
        readings = [c.input_voltage_v for c in self.chips
                    if c.opened and not c.failed and c.input_voltage_v is not None]
        if not readings:
            return
        vin = min(readings)
        limit = self.settings.min_input_voltage
        if vin < limit:
            if "poe:supply:undervoltage" not in self._active:   # that alert says it already
                self._raise("poe:supply:low", "critical", "poe:supply",
                            f"The PoE supply reads {vin:.1f} V, below {limit:.0f} V: cameras "
                            "may brown out or refuse power. Check the 48-57 V power supply.")
        elif vin >= limit + VOLTAGE_HYSTERESIS_V:
            for key in ("poe:supply:low", "poe:supply:undervoltage"):
                self._clear(key, f"The PoE supply is back at {vin:.1f} V.")

    # --- budget ---------------------------------------------------------------------------
    def _claim(self, rec: PortRecord) -> budget.Claim:
        return budget.Claim(port=rec.number, priority=rec.priority,
                            allocation_w=rec.allocation_w,
                            measured_w=rec.power_w if rec.power_good else None,
                            delivering=rec.power_good)

    def _powered_claims(self, exclude: int | None = None) -> list[budget.Claim]:
        return [self._claim(r) for r in self.ports
                if r.granted and not r.stale and r.number != exclude]

    def _admit(self, now: float) -> None:
        waiting = [r for r in self.ports if r.state is PortState.CLASSIFIED and not r.granted
                   and r.enabled and r.cycling_until is None and not r.stale
                   and not self.chips[r.chip].hold]
        waiting.sort(key=lambda r: budget.precedence_key(self._claim(r)))
        policy, margin = self.settings.budget_policy, self.settings.measured_margin_w
        for rec in waiting:
            if rec.granted:   # (not possible today; kept for clarity)
                continue
            decision = budget.admit(self._claim(rec), self._powered_claims(), self.budget_w,
                                    policy=policy, margin_w=margin)
            if not decision.granted:
                if not rec.denied:
                    log.info("poe port=%d label=%r denied need=%.1fW in_use=%.1fW budget=%.1fW",
                             rec.number, rec.label, decision.needed_w, decision.in_use_w,
                             self.budget_w)
                rec.denied = True
                rec.deny_reason = rec.deny_reason or (
                    f"needs {decision.needed_w:.1f} W, {decision.in_use_w:.1f} of "
                    f"{self.budget_w:.1f} W in use")
                rec.detail = f"denied: {rec.deny_reason}"
                self._raise(f"poe:{rec.label}:budget", "warning", f"poe:{rec.label}",
                            f"{rec.label} is not powered: its class {rec.pd_class} device needs "
                            f"{decision.needed_w:.1f} W and {decision.in_use_w:.1f} of "
                            f"{self.budget_w:.1f} W are already in use. Free a port, lower "
                            "another port's priority or raise poe.budget_w.")
                continue
            for victim in decision.shed:
                self._shed(self._port(victim), f"shed for {rec.label} ({rec.priority})")
            try:
                self._ctl(rec).power_on(rec.spec.channel)
            except PseBusError as exc:
                self._chip_failed(self.chips[rec.chip], exc)
                continue
            rec.granted = True
            rec.detail = "powering on"
            log.info("poe port=%d label=%r power on class=%s allocation=%.1fW", rec.number,
                     rec.label, rec.pd_class, rec.allocation_w)

    def _shed(self, rec: PortRecord, why: str) -> None:
        try:
            self._ctl(rec).power_off(rec.spec.channel)
        except PseBusError as exc:
            self._chip_failed(self.chips[rec.chip], exc)
            return
        rec.granted, rec.denied, rec.deny_reason = False, True, why
        rec.power_good = rec.power_enabled = False
        self._raise(f"poe:{rec.label}:budget", "warning", f"poe:{rec.label}",
                    f"{rec.label} ({rec.priority} priority) was switched off: {why}; it gets "
                    "power back when the budget has room.")
        self._set_state(rec, PortState.CLASSIFIED, f"denied: {why}")

    def _enforce_budget(self) -> None:
        claims = self._powered_claims()
        victims = budget.overrun(claims, self.budget_w, policy=self.settings.budget_policy,
                                 margin_w=self.settings.measured_margin_w)
        if not victims:
            self._clear("poe:budget:overrun")
            return
        measured = sum(c.measured_w or 0.0 for c in claims)
        charged = sum(budget.charge_w(c, self.settings.budget_policy,
                                      self.settings.measured_margin_w) for c in claims)
        what = (f"PoE draw {measured:.1f} W" if measured > self.budget_w
                else f"PoE use {charged:.1f} W (by {self.settings.budget_policy})")
        self._raise("poe:budget:overrun", "warning", "poe:budget",
                    f"{what} is over the {self.budget_w:.1f} W budget: switched off "
                    f"{', '.join(self._port(v).label for v in victims)} "
                    "(lowest priority first).")
        for victim in victims:
            self._shed(self._port(victim), "over the power budget")

    # --- owner and recorder actions -------------------------------------------------------
    def set_enabled(self, port: int, enabled: bool) -> list[Alert]:
        def act() -> None:
            rec = self._port(port)
            if rec.enabled == enabled:
                return
            rec.enabled = enabled
            rec.denied, rec.deny_reason = False, ""
            self._clear(f"poe:{rec.label}:budget")
            if self.chips[rec.chip].opened:
                try:
                    self._apply_port_config(rec)
                    if enabled:
                        self._ctl(rec).restart_detection(rec.spec.channel)
                    else:
                        self._ctl(rec).power_off(rec.spec.channel)
                except PseBusError as exc:
                    self._chip_failed(self.chips[rec.chip], exc)
            rec.granted = False
            log.info("poe port=%d label=%r %s by the owner", rec.number, rec.label,
                     "enabled" if enabled else "disabled")
            self._set_state(rec, PortState.SEARCHING if enabled else PortState.DISABLED,
                            "" if enabled else "disabled by the owner")
        return self._call(act)[1]

    def set_priority(self, port: int, priority: str) -> None:
        if priority not in budget.PRIORITIES:
            raise InvalidConfig(f"priority must be one of {', '.join(budget.PRIORITIES)}")
        with self._lock:
            self._port(port).priority = priority

    def power_cycle(self, port: int, off_seconds: float, reason: str = "requested") -> float:
        """Switch a port off now and on again after `off_seconds`; returns when (monotonic).

        The owner's action: not limited by the hourly policy, but counted by it."""
        return self._call(lambda: self._power_cycle(self._port(port), off_seconds, reason))[0]

    def _power_cycle(self, rec: PortRecord, off_seconds: float, reason: str) -> float:
        if not 1.0 <= off_seconds <= 600.0:
            raise InvalidConfig(f"power cycle off time must be 1-600 s, not {off_seconds}")
        if not rec.enabled:
            raise FailedPrecondition(f"{rec.label} is disabled")
        chip = self.chips[rec.chip]
        if not chip.opened:
            raise Unavailable(f"{rec.label}: PoE controller not available ({chip.failed})")
        ctl, ch = chip.controller, rec.spec.channel
        try:
            # Off mode first: in Auto (or after a lost config) PWOFF alone re-detects and
            # powers the camera straight back on (hardware.md §1.2).
            ctl.set_mode(ch, PortMode.OFF)
            ctl.power_off(ch)
        except PseBusError as exc:
            self._chip_failed(chip, exc)
            raise Unavailable(str(exc)) from exc
        now = self.clock.monotonic()
        rec.cycling_until, rec.cycle_reason = now + off_seconds, reason
        rec.granted = rec.power_good = rec.power_enabled = False
        self.cycles.record(rec.number)
        log.warning("poe port=%d label=%r power cycle off=%.0fs reason=%r", rec.number,
                    rec.label, off_seconds, reason)
        self._set_state(rec, PortState.DISABLED, f"power cycle ({reason}), on again in "
                        f"{off_seconds:.0f} s")
        return rec.cycling_until

    def _end_cycle(self, rec: PortRecord) -> None:
        rec.cycling_until = None
        try:
            self._apply_port_config(rec)
            self._ctl(rec).restart_detection(rec.spec.channel)
        except PseBusError as exc:
            self._chip_failed(self.chips[rec.chip], exc)
            return
        log.info("poe port=%d label=%r power cycle over: searching", rec.number, rec.label)
        self._set_state(rec, PortState.SEARCHING, "after power cycle")

    def request_power_cycle(self, port: int, reason: str) -> CycleDecision:
        """Stall recovery: cycle the port unless a rule says no; the decision says why."""
        def act() -> CycleDecision:
            rec = self._port(port)
            refuse = None
            if not rec.enabled:
                refuse = f"{rec.label} is disabled by the owner"
            elif rec.cycling_until is not None:
                refuse = f"{rec.label} is already being power-cycled"
            elif not self.chips[rec.chip].opened or self.chips[rec.chip].failed:
                refuse = f"{rec.label}: PoE controller not available"
            elif rec.state is not PortState.POWERED:
                refuse = f"{rec.label} is not powering a device (state {rec.state.value})"
            if refuse:
                log.info("poe port=%d power cycle refused reason=%r: %s", port, reason, refuse)
                return CycleDecision(port, False, refuse)
            decision = self.cycles.check(port, rec.label)
            if not decision.allowed:
                log.warning("poe port=%d power cycle refused reason=%r: %s", port, reason,
                            decision.reason)
                self._raise(f"poe:{rec.label}:cycle_limit", "warning", f"poe:{rec.label}",
                            f"{decision.reason}; the camera is left as it is ({reason}).")
                return decision
            self._clear(f"poe:{rec.label}:cycle_limit")
            try:
                back = self._power_cycle(rec, self.settings.cycle_off_seconds, reason)
            except (Unavailable, FailedPrecondition) as exc:
                return CycleDecision(port, False, str(exc))
            return CycleDecision(port, True, f"{rec.label} switched off for "
                                 f"{self.settings.cycle_off_seconds:.0f} s: {reason}",
                                 back_at=back)
        return self._call(act)[0]

    # --- views ----------------------------------------------------------------------------
    def port_state(self, port: int) -> PortState:
        return self._port(port).state

    def history(self, port: int) -> list[PortState]:
        """The states a port went through, oldest first (last HISTORY entries)."""
        return [state for _, state in self._port(port).history]

    def snapshot(self) -> PoeSnapshot:
        with self._lock:
            granted = [r for r in self.ports if r.granted]
            allocated = sum(budget.charge_w(self._claim(r), self.settings.budget_policy,
                                            self.settings.measured_margin_w) for r in granted)
            vins = [c.input_voltage_v for c in self.chips if c.input_voltage_v]
            chips = tuple({
                "name": c.controller.name, "address": f"0x{c.address:02X}",
                "ok": c.opened and not c.failed, "error": c.failed or None,
                "temperature_c": _r(c.temperature_c, 1), "input_voltage_v": _r(c.input_voltage_v),
                "hold": c.hold or None} for c in self.chips)
            ports = []
            for r in self.ports:
                charged = budget.charge_w(self._claim(r), self.settings.budget_policy,
                                          self.settings.measured_margin_w) if r.granted else 0.0
                ports.append({
                    "port": r.number, "label": r.label, "state": r.state.value,
                    "detail": r.detail, "enabled": r.enabled, "priority": r.priority,
                    "class": r.pd_class, "detection": r.detection.value,
                    "power_w": round(r.power_w, 2), "voltage_v": _r(r.voltage_v),
                    "current_ma": _r(r.current_ma, 1), "allocated_w": round(charged, 2),
                    "budget_share": round(charged / self.budget_w, 3) if self.budget_w else 0.0,
                    "max_w": r.spec.max_w, "denied": r.denied, "faults": sorted(r.faults),
                    "cycles_last_hour": self.cycles.count(r.number), "stale": r.stale})
            return PoeSnapshot(time=self.clock.wall(), budget_w=self.budget_w,
                               budget_policy=self.settings.budget_policy, allocated_w=allocated,
                               measured_w=sum(r.power_w for r in self.ports),
                               input_voltage_v=_r(min(vins)) if vins else None,
                               chips=chips, ports=tuple(ports))

    def to_json(self) -> str:
        return json.dumps(self.snapshot().to_json(), sort_keys=True)

    # --- the loop -------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Poll every `poll_interval` seconds until `stop` is set (vigil-hwd's thread)."""
        while not stop.is_set():
            try:
                self.poll()
            except Exception:   # never let one bad poll end PoE management
                log.exception("poe poll failed")
            if self.clock.sleep(self.settings.poll_interval, stop):
                break
