"""What a PoE power-sourcing controller (PSE) offers, whatever the chip.

A controller has a few ports (channels). Each port runs in one of four modes, finds out
whether an 802.3 powered device (PD) is attached (detection: a 25 kOhm signature), asks it
how much power it wants (classification: class 0-4 on 802.3at parts), switches power on,
watches that power is good and cuts it on faults. The chip measures each port's voltage
and current, its own die temperature and its input (VPWR) voltage.

Events are latched by the chip and read **clear-on-read**: reading the register returns
every event since the previous read and clears it in the same bus transaction. So a
driver reads each event register once per `read_events()` call, hands the result to the
caller and keeps nothing back; a second read would return nothing (or only newer
events). If the bus fails half way through, the registers already read have been cleared
on the chip, so a driver keeps what it did read and returns it with the next call.

Port numbers in this interface are 1-based and local to the controller (1..port_count).
Mapping them to the labels on the box ("Port 1".."Port 8") is the board's job
(`hw.pse.board`).
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass, field
from typing import Protocol


class PortMode(enum.Enum):
    OFF = "off"              # no detection, no power
    MANUAL = "manual"        # host does all; detect/class are one-shot; PWON is unconditional
    SEMI_AUTO = "semi_auto"  # chip detects and classifies continuously; host switches power on
    AUTO = "auto"            # chip detects, classifies and powers by itself


class Detection(enum.Enum):
    """Result of the last detection cycle (the 25 kOhm signature test)."""

    UNKNOWN = "unknown"                  # no detection done yet
    SHORT = "short"                      # < 1.8 kOhm: a short on the cable or the PD
    RESISTANCE_LOW = "resistance_low"
    VALID = "valid"                      # a PoE device is attached
    RESISTANCE_HIGH = "resistance_high"
    OPEN = "open"                        # nothing attached (or a non-PoE device)
    MOSFET_FAULT = "mosfet_fault"        # the port's power switch is damaged
    LEGACY = "legacy"                    # pre-standard capacitive PD
    CAPACITANCE_BEYOND_CLAMP = "capacitance_beyond_clamp"
    CAPACITANCE_LOW_DELTA = "capacitance_low_delta"
    CAPACITANCE_OUT_OF_RANGE = "capacitance_out_of_range"
    INVALID = "invalid"                  # a reserved code: the register read made no sense


class ClassResult(enum.Enum):
    """Result of the last classification cycle."""

    UNKNOWN = "unknown"          # not classified yet
    CLASS_0 = "class_0"
    CLASS_1 = "class_1"
    CLASS_2 = "class_2"
    CLASS_3 = "class_3"
    CLASS_4 = "class_4"
    RESERVED = "reserved"        # a code the datasheet marks reserved (read as class 0 upstream)
    OVERCURRENT = "overcurrent"  # the PD drew too much during classification
    MISMATCH = "mismatch"        # the two class events of 2-event classification differ
    INVALID = "invalid"          # a code the datasheet does not define

    @property
    def pd_class(self) -> int | None:
        """The IEEE class number when the result is one, else None."""
        return _CLASS_NUMBERS.get(self)


_CLASS_NUMBERS = {ClassResult.CLASS_0: 0, ClassResult.CLASS_1: 1, ClassResult.CLASS_2: 2,
                  ClassResult.CLASS_3: 3, ClassResult.CLASS_4: 4}


class Fault(enum.Enum):
    """Why a port lost power or was refused it (from latched events and detection)."""

    OVERLOAD = "overload"              # ICUT/PCUT: drew more than allowed for longer than tICUT
    CURRENT_LIMIT = "current_limit"    # ILIM: current limit held for longer than tLIM
    SHORT = "short"                    # detection saw a short circuit
    START_FAULT = "start_fault"        # power-on (inrush) did not complete
    DISCONNECT = "disconnect"          # the PD went away (MPS lost)
    THERMAL = "thermal"                # die over-temperature shutdown (whole chip)
    SUPPLY_UNDERVOLTAGE = "supply_undervoltage"  # VPWR (48-57 V) too low (whole chip)
    CLASS_OVERCURRENT = "class_overcurrent"
    MOSFET = "mosfet"


@dataclass(frozen=True)
class PortEvents:
    """Events latched for one port since the previous read."""

    port: int
    power_enable_changed: bool = False
    power_good_changed: bool = False
    detection_done: bool = False
    classification_done: bool = False
    overload: bool = False          # ICUT
    disconnect: bool = False        # DISF
    start_fault: bool = False       # STRT
    current_limit: bool = False     # ILIM

    @property
    def faults(self) -> frozenset[Fault]:
        out = set()
        if self.overload:
            out.add(Fault.OVERLOAD)
        if self.current_limit:
            out.add(Fault.CURRENT_LIMIT)
        if self.start_fault:
            out.add(Fault.START_FAULT)
        if self.disconnect:
            out.add(Fault.DISCONNECT)
        return frozenset(out)

    @property
    def any(self) -> bool:
        return any((self.power_enable_changed, self.power_good_changed, self.detection_done,
                    self.classification_done, self.overload, self.disconnect,
                    self.start_fault, self.current_limit))


@dataclass(frozen=True)
class ChipEvents:
    """Everything latched by one controller since the previous `read_events()`."""

    ports: tuple[PortEvents, ...]
    thermal_shutdown: bool = False       # TSD: the chip turned every port off
    vdd_undervoltage: bool = False       # VDUV: 3.3 V logic supply dipped; registers reset (POR)
    vdd_warning: bool = False            # VDWRN
    supply_undervoltage: bool = False    # VPUV: the 48 V input fell below its lockout

    def port(self, port: int) -> PortEvents:
        return self.ports[port - 1]

    @property
    def any(self) -> bool:
        return (self.thermal_shutdown or self.vdd_undervoltage or self.vdd_warning
                or self.supply_undervoltage or any(p.any for p in self.ports))


@dataclass(frozen=True)
class PortStatus:
    """One port as the controller sees it now. Measurements are None when unreadable."""

    port: int
    mode: PortMode
    detect_enabled: bool
    class_enabled: bool
    disconnect_enabled: bool
    poe_plus: bool
    detection: Detection
    detection_code: int          # the raw register field, for logs
    class_result: ClassResult
    class_code: int
    power_enabled: bool          # PE: the chip switched power on
    power_good: bool             # PG: power is being delivered
    voltage_v: float | None
    current_ma: float | None
    notes: tuple[str, ...] = ()  # readings that were impossible and were discarded

    @property
    def pd_class(self) -> int | None:
        return self.class_result.pd_class

    @property
    def power_w(self) -> float | None:
        if self.voltage_v is None or self.current_ma is None:
            return None
        return self.voltage_v * self.current_ma / 1000.0


@dataclass(frozen=True)
class ChipInfo:
    """What `open()` learnt about the part."""

    name: str                 # e.g. "TPS23861 at i2c-1:0x20"
    bus: int
    address: int
    device_id: int            # raw identity register(s), for logs
    firmware_revision: int
    silicon_revision: int
    came_up_in_auto: bool     # the part powered ports on its own before we configured it


@dataclass(frozen=True)
class ChipStatus:
    temperature_c: float | None
    input_voltage_v: float | None
    ports: tuple[PortStatus, ...]
    notes: tuple[str, ...] = field(default=())


class PseError(Exception):
    """Base of the PSE driver errors."""


class PseBusError(PseError):
    """A bus transfer failed. The message names the bus, address, register and port."""

    def __init__(self, message: str, *, bus: int, address: int, register: int | None,
                 port: int | None, errno: int | None) -> None:
        super().__init__(message)
        self.bus, self.address, self.register = bus, address, register
        self.port, self.errno = port, errno


class PseIdentityError(PseError):
    """The part at the address is not the expected controller."""

    def __init__(self, message: str, *, bus: int, address: int, read: dict[int, int]) -> None:
        super().__init__(message)
        self.bus, self.address, self.read = bus, address, read


class SMBusLike(Protocol):
    """The slice of smbus2.SMBus the drivers use (the simulator implements it too)."""

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None: ...

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]: ...


class PseController(abc.ABC):
    """One PSE chip. Methods raise PseBusError on bus failure, naming the port involved."""

    name: str
    port_count: int

    @abc.abstractmethod
    def open(self) -> ChipInfo:
        """Check the part's identity (PseIdentityError if wrong) and apply the base setup."""

    @abc.abstractmethod
    def configure_port(self, port: int, mode: PortMode, *, detect: bool = True,
                       classify: bool = True, disconnect: bool = True,
                       poe_plus: bool = False) -> None:
        """Set a port's mode and enables in one go (re-applied after a power-off)."""

    @abc.abstractmethod
    def set_mode(self, port: int, mode: PortMode) -> None: ...

    @abc.abstractmethod
    def set_detect_class(self, port: int, detect: bool, classify: bool) -> None: ...

    @abc.abstractmethod
    def restart_detection(self, port: int) -> None:
        """Start a new detect + class cycle now (after a fault's cool-down on the chip)."""

    @abc.abstractmethod
    def power_on(self, port: int) -> None: ...

    @abc.abstractmethod
    def power_off(self, port: int) -> None: ...

    @abc.abstractmethod
    def reset_port(self, port: int) -> None:
        """The chip's per-port reset: power off and forget detection/class results."""

    @abc.abstractmethod
    def port_status(self, port: int) -> PortStatus: ...

    @abc.abstractmethod
    def read_events(self) -> ChipEvents:
        """Latched events since the previous call, each returned exactly once."""

    @abc.abstractmethod
    def temperature_c(self) -> float | None: ...

    @abc.abstractmethod
    def input_voltage_v(self) -> float | None: ...

    def status(self) -> ChipStatus:
        return ChipStatus(temperature_c=self.temperature_c(),
                          input_voltage_v=self.input_voltage_v(),
                          ports=tuple(self.port_status(p) for p in range(1, self.port_count + 1)))
