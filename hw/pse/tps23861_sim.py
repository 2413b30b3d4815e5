"""A register-level TPS23861 simulator that *is* an smbus2-compatible bus object.

`SimulatedBus` answers `read_byte_data`, `write_byte_data`, `read_word_data`,
`write_word_data`, `read_i2c_block_data`, `write_i2c_block_data`, `read_byte`,
`write_byte` and `close` for one or more simulated chips at their 7-bit addresses, so the
real driver (`hw.pse.tps23861.Tps23861`) runs against it unchanged. It models what the
driver and the PoE manager depend on (shared/reference/hardware.md §1.2, §6.2):

- a register file with power-up values; read-only registers ignore writes; write-only
  command registers (0x18, 0x19, 0x1A) read 0; clear-on-read event copies (0x03, 0x05,
  0x07, 0x09, 0x0B) clear themselves and their peek copy (0x02...); INTERRUPT (0x00) is
  the summary of latched events under INTERRUPT MASK (0x01);
- RESET (0x1A): RESPn per-port reset, RESAL (everything as at power-up), CLINP (release
  the INT pin), CLRAIN (clear every event and release INT);
- per port: Off / Manual / Semi-auto / Auto; detection then classification take simulated
  time; semi-auto repeats them while unpowered and waits for PWON; auto powers on by
  itself; power good after the inrush time (TIMING CONFIG); disconnect after tDIS when
  DC disconnect is enabled; overload (ICUT) after tICUT; short: ILIM, then detection says
  "short" until cleared; start fault when powering into a short; a cool-down after faults;
- per chip: thermal shutdown (all ports off, TSD event), VPWR under-voltage (VPUV, all
  ports off until the supply is back), a power-on reset (VDUV, registers back to reset);
- ADC registers computed from the scripted loads: port voltage and current, input
  voltage, die temperature, detect resistance, with the datasheet's LSBs;
- a device at an address that is not a TPS23861 (`add_foreign_device`), a missing
  address (EREMOTEIO, as a NACK reads on Linux), and injected OSErrors (EIO, EREMOTEIO,
  ETIMEDOUT) on chosen addresses/registers.

Time comes from a `now()` callable (e.g. `SimulatedClock.monotonic`); state advances
lazily to `now()` at every bus access or scenario call, so tests drive time by moving
their clock. hw does not import appliance: the clock is just a callable.

Timings that the datasheet gives are taken from TIMING CONFIG (tDIS, tICUT, tSTART);
the others below are round figures for the simulation, not datasheet values.
"""

from __future__ import annotations

import errno as errnos
import os
from dataclasses import dataclass
from typing import Any, Callable

from hw.pse import tps23861_regs as R

DETECT_S = 0.3            # one detection cycle (sim figure)
CLASS_S = 0.05            # one classification cycle (sim figure)
COOLDOWN_S = 1.0          # after ICUT / ILIM / start fault before detection resumes (sim figure)
TLIM_S = 0.06             # current limit held this long before the port is cut (sim figure)
VPUV_FALLING_V = 26.0     # sim's VPWR lockout threshold (not a datasheet figure)
VPUV_HYSTERESIS_V = 1.0
PORT_DROP_V = 0.05        # port output below VPWR while powered (MOSFET + sense resistor)
SENSE_LSB_V = 15.565e-6   # ADC LSB across the sense resistor: 61.039 uA x 255 mOhm
TSD_TEMPERATURE_C = 146.0
CLASS_ALLOWANCE_W = {0: 15.4, 1: 4.0, 2: 7.0, 3: 15.4, 4: 30.0}

IDLE, DETECTING, CLASSIFYING, STARTING, POWERED = (
    "idle", "detecting", "classifying", "starting", "powered")
OVERLOADING, LIMITING, DISCONNECTING, COOLDOWN = (
    "overloading", "limiting", "disconnecting", "cooldown")


@dataclass
class SimDevice:
    """What is plugged into a port."""

    pd_class: int = 0                 # IEEE class 0-4
    load_w: float = 5.0
    signature: int = R.DETECT_VALID   # detection code this device produces
    class_code: int | None = None     # override the class register code (e.g. 7 overcurrent)
    short: bool = False
    overload_armed: bool = False      # trip ICUT right after the next power good

    def detect_code(self) -> int:
        return R.DETECT_SHORT if self.short else self.signature

    def class_register_code(self) -> int:
        return self.class_code if self.class_code is not None else R.CLASS_CODE_FOR[self.pd_class]


@dataclass
class SimPort:
    channel: int                       # 1..4
    device: SimDevice | None = None
    phase: str = IDLE
    next_at: float | None = None
    pe: bool = False
    pg: bool = False
    detect_code: int = 0
    class_code: int = 0
    cycle_s: float = 0.0               # length of the detection cycle now running
    cycle_codes: tuple[int, int] = (0, 0)   # (detect, class) codes when that cycle started
    repeats: bool = False              # the running cycle will end like the previous one


def _os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class SimulatedTps23861:
    """One chip: a register bank with behaviour. Channels are 1..4."""

    def __init__(self, address: int, now: Callable[[], float], *, sense_resistor_mohm: int = 255,
                 auto_bit: bool = True, identity: tuple[int, int] = (0x54, 0xE1),
                 firmware_revision: int = 0x02, input_voltage_v: float = 53.5,
                 temperature_c: float = 45.0) -> None:
        self.address, self.now = address, now
        self.sense_resistor_mohm = sense_resistor_mohm
        self.auto_bit = auto_bit
        self.identity = identity          # (ID 0x1B, DEVICE ID 0x43)
        self.firmware_revision = firmware_revision
        self.input_voltage_v = input_voltage_v
        self.temperature_c = temperature_c
        self.tsd = False
        self.vpuv = input_voltage_v < VPUV_FALLING_V
        self.int_released = False
        self.forced: dict[int, int] = {}  # register -> value served instead of the model
        self.ports = [SimPort(channel=n) for n in range(1, 5)]
        self._power_up()
        self.latches[R.SUPPLY_EVENT] = R.SUPPLY_VDUV   # a power-on reset happened

    # --- register file --------------------------------------------------------------------
    def _power_up(self) -> None:
        self.regs = {addr: reg.reset for addr, reg in R.REGISTERS.items()
                     if reg.access == "rw"}
        auto = 0xFF if self.auto_bit else 0x00
        self.regs[R.OPERATING_MODE] = auto
        self.regs[R.DETECT_CLASS_ENABLE] = auto
        self.regs[R.DISCONNECT_ENABLE] = auto & 0x0F
        self.latches = {R.POWER_EVENT: 0, R.DETECTION_EVENT: 0, R.FAULT_EVENT: 0,
                        R.START_EVENT: 0, R.SUPPLY_EVENT: 0}
        for port in self.ports:
            port.pe = port.pg = False
            port.phase, port.next_at, port.detect_code, port.class_code = IDLE, None, 0, 0
        self._resume_all(self.now())

    def _latch(self, reg: int, bits: int) -> None:
        if bits:
            self.latches[reg] |= bits
            self.int_released = False

    def interrupt_summary(self) -> int:
        lo, hi = (lambda v: v & 0x0F), (lambda v: v >> 4)
        lat = self.latches
        bits = 0
        bits |= R.INT_PEC if lo(lat[R.POWER_EVENT]) else 0
        bits |= R.INT_PGC if hi(lat[R.POWER_EVENT]) else 0
        bits |= R.INT_DISF if hi(lat[R.FAULT_EVENT]) else 0
        bits |= R.INT_DETC if lo(lat[R.DETECTION_EVENT]) else 0
        bits |= R.INT_CLASC if hi(lat[R.DETECTION_EVENT]) else 0
        bits |= R.INT_IFAULT if lo(lat[R.FAULT_EVENT]) or hi(lat[R.START_EVENT]) else 0
        bits |= R.INT_STRTF if lo(lat[R.START_EVENT]) else 0
        bits |= R.INT_SUPF if lat[R.SUPPLY_EVENT] else 0
        return bits & self.regs[R.INTERRUPT_MASK]

    @property
    def int_asserted(self) -> bool:
        """The INT pin (active low on the part): asserted while unmasked events are latched."""
        return bool(self.interrupt_summary()) and not self.int_released

    def peek(self, reg: int) -> int:
        """A register's value now, without read side effects (for tests)."""
        self.advance(self.now())
        return self._value(reg, clear=False)

    def read(self, reg: int) -> int:
        return self._value(reg, clear=True)

    def _value(self, reg: int, clear: bool) -> int:
        if reg in self.forced:
            return self.forced[reg]
        info = R.REGISTERS.get(reg)
        if reg == R.INTERRUPT:
            return self.interrupt_summary()
        if reg in self.latches:
            return self.latches[reg]
        if info is not None and info.access == "cor":
            value = self.latches[info.shadow]
            if clear:
                self.latches[info.shadow] = 0
            return value
        if reg in R.PORT_STATUS:
            port = self.ports[R.PORT_STATUS.index(reg)]
            return (port.class_code << 4) | port.detect_code
        if reg == R.POWER_STATUS:
            return sum((1 << i) * p.pe + (1 << (i + 4)) * p.pg for i, p in enumerate(self.ports))
        if reg == R.I2C_ADDRESS:
            return (0x80 if self.auto_bit else 0) | self.address
        if reg == R.ID:
            return self.identity[0]
        if reg == R.DEVICE_ID:
            return self.identity[1]
        if reg == R.FIRMWARE_REVISION:
            return self.firmware_revision
        if info is not None and info.access == "rw":
            return self.regs[reg]
        word = self._adc_word(reg & ~1)
        if word is not None:
            return (word >> 8) & 0xFF if reg & 1 else word & 0xFF
        if reg == R.TEMPERATURE:
            raw = round((self.temperature_c - R.TEMPERATURE_OFFSET_C) / R.TEMPERATURE_LSB_C)
            return max(0, min(0xFF, raw))
        return 0   # write-only, reserved or unimplemented addresses

    def _adc_word(self, reg: int) -> int | None:
        if reg == R.INPUT_VOLTAGE:
            return self._raw_v(self.input_voltage_v)
        if reg in R.PORT_VOLTAGE:
            return self._raw_v(self.port_voltage_v(R.PORT_VOLTAGE.index(reg) + 1))
        if reg in R.PORT_CURRENT:
            amps = self.port_current_a(R.PORT_CURRENT.index(reg) + 1)
            raw = round(amps * self.sense_resistor_mohm / 1000.0 / SENSE_LSB_V)
            return max(0, min(R.ADC_MASK, raw))
        if reg in R.PORT_RESISTANCE:
            port = self.ports[R.PORT_RESISTANCE.index(reg)]
            if port.detect_code == R.DETECT_VALID:
                return round(25_000 / R.RESISTANCE_LSB_OHM)
            if port.detect_code == R.DETECT_OPEN:
                return 2 << 14
            if port.detect_code == R.DETECT_SHORT:
                return 3 << 14
            return 0
        return None

    @staticmethod
    def _raw_v(volts: float) -> int:
        return max(0, min(R.ADC_MASK, round(volts / R.VOLTAGE_LSB_V)))

    def port_voltage_v(self, channel: int) -> float:
        port = self.ports[channel - 1]
        return max(0.0, self.input_voltage_v - PORT_DROP_V) if port.pe else 0.0

    def port_current_a(self, channel: int) -> float:
        port = self.ports[channel - 1]
        volts = self.port_voltage_v(channel)
        if not port.pe or port.device is None or volts <= 0:
            return 0.0
        if port.phase in (OVERLOADING, LIMITING):
            return 1.0   # pegged at the current limit
        return port.device.load_w / volts

    def write(self, reg: int, value: int) -> None:
        value &= 0xFF
        now = self.now()
        info = R.REGISTERS.get(reg)
        if info is None or info.access in ("ro", "cor"):
            return  # the part ignores writes to read-only and reserved addresses
        if info.access == "rw":
            old = self.regs[reg]
            self.regs[reg] = value
            if reg == R.OPERATING_MODE:
                for port in self.ports:
                    shift = 2 * (port.channel - 1)
                    if (old >> shift) & 3 != (value >> shift) & 3:
                        self._mode_changed(port, (value >> shift) & 3, now)
            elif reg == R.DETECT_CLASS_ENABLE:
                for port in self.ports:
                    bit = 1 << (port.channel - 1)
                    if (old ^ value) & bit:
                        self._detect_enable_changed(port, bool(value & bit), now)
            return
        if reg == R.DETECT_CLASS_RESTART:
            for port in self.ports:
                if value & (0x11 << (port.channel - 1)) and self._mode(port) != R.MODE_OFF \
                        and port.phase in (IDLE, DETECTING, CLASSIFYING) and not self.suspended:
                    self._start_detection(port, now)
        elif reg == R.POWER_ENABLE:
            for port in self.ports:
                on, off = value & (1 << (port.channel - 1)), value & (0x10 << (port.channel - 1))
                if off:
                    if port.pe:
                        self._power_down(port)
                        port.detect_code = port.class_code = 0
                        self._resume(port, now)
                elif on:
                    self._pwon(port, now)
        elif reg == R.RESET:
            if value & R.RESET_ALL:
                self._power_up()
            for port in self.ports:
                if value & (1 << (port.channel - 1)):
                    self._power_down(port, events=False)
                    port.detect_code = port.class_code = 0
                    self._resume(port, now)
            if value & R.RESET_CLRAIN:
                for key in self.latches:
                    self.latches[key] = 0
                self.int_released = True
            if value & R.RESET_CLINP:
                self.int_released = True

    # --- per-port behaviour ---------------------------------------------------------------
    def _mode(self, port: SimPort) -> int:
        return (self.regs[R.OPERATING_MODE] >> (2 * (port.channel - 1))) & 3

    def _detect_enabled(self, port: SimPort) -> bool:
        return bool(self.regs[R.DETECT_CLASS_ENABLE] & (1 << (port.channel - 1)))

    def _class_enabled(self, port: SimPort) -> bool:
        return bool(self.regs[R.DETECT_CLASS_ENABLE] & (0x10 << (port.channel - 1)))

    def _disconnect_enabled(self, port: SimPort) -> bool:
        return bool(self.regs[R.DISCONNECT_ENABLE] & (1 << (port.channel - 1)))

    def _timing(self, field: tuple[float, ...], shift: int) -> float:
        return field[(self.regs[R.TIMING_CONFIG] >> shift) & 3]

    @property
    def suspended(self) -> bool:
        return self.tsd or self.vpuv

    def _set_phase(self, port: SimPort, phase: str, at: float | None) -> None:
        port.phase, port.next_at = phase, at
        port.repeats = False

    def _start_detection(self, port: SimPort, now: float, repeats: bool = False) -> None:
        self._set_phase(port, DETECTING, now + DETECT_S)
        port.cycle_s = DETECT_S + (CLASS_S if port.detect_code == R.DETECT_VALID
                                   and self._class_enabled(port) else 0.0)
        port.cycle_codes = (port.detect_code, port.class_code)
        port.repeats = repeats

    def _resume(self, port: SimPort, now: float) -> None:
        """After power went away: continue as the mode says."""
        mode = self._mode(port)
        if not self.suspended and mode in (R.MODE_AUTO, R.MODE_SEMI_AUTO) \
                and self._detect_enabled(port):
            self._start_detection(port, now)
        else:
            self._set_phase(port, IDLE, None)

    def _resume_all(self, now: float) -> None:
        for port in self.ports:
            if port.phase == IDLE:
                self._resume(port, now)

    def _mode_changed(self, port: SimPort, mode: int, now: float) -> None:
        if mode == R.MODE_OFF:
            self._power_down(port)
            port.detect_code = port.class_code = 0
            self._set_phase(port, IDLE, None)
        elif mode == R.MODE_MANUAL:
            # A cycle under way finishes (and, now manual, clears its enable bits); an idle
            # port with DETE set does one cycle.
            if port.phase == IDLE and self._detect_enabled(port) and not self.suspended:
                self._start_detection(port, now)
            port.repeats = False
        elif port.phase == IDLE:
            self._resume(port, now)

    def _detect_enable_changed(self, port: SimPort, enabled: bool, now: float) -> None:
        if enabled and port.phase == IDLE and not self.suspended \
                and self._mode(port) != R.MODE_OFF:
            self._start_detection(port, now)   # manual: one shot; auto/semi: continuous
        elif not enabled and port.phase in (DETECTING, CLASSIFYING):
            self._set_phase(port, IDLE, None)

    def _pwon(self, port: SimPort, now: float) -> None:
        mode = self._mode(port)
        if port.pe or self.suspended or mode == R.MODE_OFF:
            return
        if mode != R.MODE_MANUAL and port.detect_code != R.DETECT_VALID:
            return  # semi-auto/auto: only a port with a valid detection may be powered
        self._power_on(port, now)

    def _power_on(self, port: SimPort, now: float) -> None:
        port.pe = True
        self._latch(R.POWER_EVENT, 1 << (port.channel - 1))
        self._set_phase(port, STARTING, now + self._timing(R.TSTART_S, 4))

    def _power_down(self, port: SimPort, events: bool = True) -> None:
        i = port.channel - 1
        if events:
            self._latch(R.POWER_EVENT,
                        ((1 << i) if port.pe else 0) | ((1 << (i + 4)) if port.pg else 0))
        port.pe = port.pg = False

    def _fault_off(self, port: SimPort, reg: int, bit: int, at: float) -> None:
        self._latch(reg, bit)
        self._power_down(port)
        self._set_phase(port, COOLDOWN, at + COOLDOWN_S)

    def _complete(self, port: SimPort) -> None:
        """Run the transition scheduled at port.next_at."""
        t = port.next_at
        assert t is not None
        i = port.channel - 1
        mode = self._mode(port)
        if port.phase == DETECTING:
            port.detect_code = port.device.detect_code() if port.device else R.DETECT_OPEN
            self._latch(R.DETECTION_EVENT, 1 << i)
            if mode == R.MODE_MANUAL:
                self.regs[R.DETECT_CLASS_ENABLE] &= ~(1 << i)   # one shot
            if port.detect_code == R.DETECT_VALID and self._class_enabled(port):
                codes, cycle_s = port.cycle_codes, port.cycle_s
                self._set_phase(port, CLASSIFYING, t + CLASS_S)
                port.cycle_codes, port.cycle_s = codes, cycle_s
                return
            port.class_code = 0
            if mode == R.MODE_AUTO and port.detect_code == R.DETECT_VALID:
                self._power_on(port, t)      # auto without classification: class unknown
            else:
                self._next_cycle(port, t, mode)
        elif port.phase == CLASSIFYING:
            port.class_code = port.device.class_register_code() if port.device else 0
            self._latch(R.DETECTION_EVENT, 1 << (i + 4))
            if mode == R.MODE_MANUAL:
                self.regs[R.DETECT_CLASS_ENABLE] &= ~(1 << (i + 4))
            if mode == R.MODE_AUTO and port.class_code not in (7, 8):
                self._power_on(port, t)
            else:
                self._next_cycle(port, t, mode)
        elif port.phase == STARTING:
            if port.device is not None and port.device.short:
                self._fault_off(port, R.START_EVENT, 1 << i, t)
                return
            port.pg = True
            self._latch(R.POWER_EVENT, 1 << (i + 4))
            self._set_phase(port, POWERED, None)
            if port.device is None:
                if self._disconnect_enabled(port):
                    self._set_phase(port, DISCONNECTING, t + self._timing(R.TDIS_S, 0))
            elif port.device.overload_armed:
                port.device.overload_armed = False
                self._set_phase(port, OVERLOADING, t + self._timing(R.TICUT_S, 2))
        elif port.phase == OVERLOADING:
            self._fault_off(port, R.FAULT_EVENT, 1 << i, t)
        elif port.phase == LIMITING:
            self._fault_off(port, R.START_EVENT, 1 << (i + 4), t)
        elif port.phase == DISCONNECTING:
            if port.device is not None:
                self._set_phase(port, POWERED, None)   # plugged back within tDIS
                return
            self._latch(R.FAULT_EVENT, 1 << (i + 4))
            self._power_down(port)
            port.detect_code = port.class_code = 0
            self._resume(port, t)
        elif port.phase == COOLDOWN:
            self._set_phase(port, IDLE, None)
            self._resume(port, t)

    def _next_cycle(self, port: SimPort, t: float, mode: int) -> None:
        """Semi-auto (and auto without a valid PD) detect again while unpowered."""
        if mode in (R.MODE_AUTO, R.MODE_SEMI_AUTO) and self._detect_enabled(port):
            same = port.cycle_codes == (port.detect_code, port.class_code)
            self._start_detection(port, t, repeats=same)
        else:
            self._set_phase(port, IDLE, None)

    def advance(self, now: float) -> None:
        while True:
            due = [p for p in self.ports if p.next_at is not None and p.next_at <= now]
            if not due:
                return
            port = min(due, key=lambda p: p.next_at)
            if port.repeats and port.phase == DETECTING and port.cycle_s > 0:
                # Cycles that end like the previous one change nothing but the (already
                # latched) DETC/CLSC bits: skip the whole ones in a single step.
                skip = int((now - port.next_at) // port.cycle_s)
                if skip > 1:
                    port.next_at += (skip - 1) * port.cycle_s
            self._complete(port)

    # --- scenario -------------------------------------------------------------------------
    def plug(self, channel: int, device: SimDevice) -> None:
        port = self.ports[channel - 1]
        port.device = device
        port.repeats = False
        if port.phase == DISCONNECTING:
            self._set_phase(port, POWERED, None)

    def unplug(self, channel: int) -> None:
        port = self.ports[channel - 1]
        port.device = None
        port.repeats = False
        if port.pe and port.phase in (POWERED, STARTING, OVERLOADING, LIMITING):
            if self._disconnect_enabled(port):
                self._set_phase(port, DISCONNECTING, self.now() + self._timing(R.TDIS_S, 0))
            elif port.phase != STARTING:
                self._set_phase(port, POWERED, None)   # nobody notices: current just drops

    def overload(self, channel: int) -> None:
        port = self.ports[channel - 1]
        if port.device is None:
            raise ValueError(f"nothing plugged into channel {channel} of 0x{self.address:02X}")
        if port.phase == POWERED:
            self._set_phase(port, OVERLOADING, self.now() + self._timing(R.TICUT_S, 2))
        else:
            port.device.overload_armed = True

    def short(self, channel: int) -> None:
        port = self.ports[channel - 1]
        if port.device is None:
            port.device = SimDevice(signature=R.DETECT_SHORT)
        port.device.short = True
        port.repeats = False
        if port.pe and port.phase in (POWERED, STARTING, OVERLOADING):
            self._set_phase(port, LIMITING, self.now() + TLIM_S)

    def clear_short(self, channel: int) -> None:
        port = self.ports[channel - 1]
        if port.device is not None:
            port.device.short = False
            port.repeats = False

    def thermal_shutdown(self) -> None:
        self.temperature_c = TSD_TEMPERATURE_C
        self.tsd = True
        self._latch(R.SUPPLY_EVENT, R.SUPPLY_TSD)
        self._all_off()

    def thermal_recover(self, temperature_c: float = 60.0) -> None:
        self.temperature_c = temperature_c
        self.tsd = False
        self._resume_all(self.now())

    def set_input_voltage(self, volts: float) -> None:
        self.input_voltage_v = volts
        if not self.vpuv and volts < VPUV_FALLING_V:
            self.vpuv = True
            self._latch(R.SUPPLY_EVENT, R.SUPPLY_VPUV)
            self._all_off()
        elif self.vpuv and volts >= VPUV_FALLING_V + VPUV_HYSTERESIS_V:
            self.vpuv = False
            self._resume_all(self.now())

    def power_on_reset(self) -> None:
        """The 3.3 V logic supply dipped: every register back to its power-up value."""
        self._power_up()
        self._latch(R.SUPPLY_EVENT, R.SUPPLY_VDUV)

    def _all_off(self) -> None:
        for port in self.ports:
            self._power_down(port)
            port.detect_code = port.class_code = 0
            self._set_phase(port, IDLE, None)


class ForeignDevice:
    """Something else answering at a PSE address: a plain register bank, no behaviour."""

    def __init__(self, address: int, registers: dict[int, int] | None = None,
                 default: int = 0x00) -> None:
        self.address, self.registers, self.default = address, dict(registers or {}), default

    def read(self, reg: int) -> int:
        return self.registers.get(reg, self.default)

    def write(self, reg: int, value: int) -> None:
        self.registers[reg] = value & 0xFF

    def advance(self, now: float) -> None:
        pass


@dataclass
class InjectedError:
    errno: int
    address: int | None = None
    register: int | None = None
    count: int | None = 1     # None: until clear_errors()


class SimulatedBus:
    """An smbus2.SMBus stand-in serving simulated chips. Board ports are 1..N in chip order."""

    def __init__(self, now: Callable[[], float], bus_number: int = 1) -> None:
        self.now, self.bus_number = now, bus_number
        self.devices: dict[int, SimulatedTps23861 | ForeignDevice] = {}
        self.port_map: list[tuple[int, int]] = []    # board port n -> (address, channel)
        self.errors: list[InjectedError] = []
        self.log: list[tuple[str, int, int, int]] = []   # (op, address, register, value)
        self.pointer: dict[int, int] = {}
        self.closed = False

    @classmethod
    def from_layout(cls, layout: Any, now: Callable[[], float]) -> "SimulatedBus":
        """Chips at the layout's addresses, ports in its order, its [pse.sim] devices plugged."""
        bus = cls(now, bus_number=layout.i2c_bus)
        sim = layout.sim
        for chip in layout.chips:
            bus.add_chip(chip.address, sense_resistor_mohm=layout.sense_resistor_mohm,
                         input_voltage_v=sim.input_voltage_v if sim else 53.5,
                         temperature_c=sim.temperature_c if sim else 45.0)
        bus.port_map = [(layout.chips[p.chip].address, p.channel) for p in layout.ports]
        for dev in (sim.devices if sim else ()):
            bus.plug(dev.port, dev.pd_class, dev.load_w)
        return bus

    # --- set-up ---------------------------------------------------------------------------
    def add_chip(self, address: int, **kwargs: Any) -> SimulatedTps23861:
        chip = SimulatedTps23861(address, self.now, **kwargs)
        self.devices[address] = chip
        self.port_map.extend((address, ch) for ch in range(1, 5))
        return chip

    def add_foreign_device(self, address: int, registers: dict[int, int] | None = None,
                           default: int = 0x00) -> ForeignDevice:
        dev = ForeignDevice(address, registers, default)
        self.devices[address] = dev
        return dev

    def chip(self, address: int) -> SimulatedTps23861:
        dev = self.devices[address]
        assert isinstance(dev, SimulatedTps23861), f"0x{address:02X} is not a simulated TPS23861"
        return dev

    def inject_error(self, errno: int = errnos.EIO, *, address: int | None = None,
                     register: int | None = None, count: int | None = 1) -> None:
        """Make matching transfers raise OSError(errno): EIO, EREMOTEIO, ETIMEDOUT..."""
        self.errors.append(InjectedError(errno, address, register, count))

    def clear_errors(self) -> None:
        self.errors.clear()

    def tick(self) -> None:
        """Bring every chip up to now() (bus accesses do this too)."""
        now = self.now()
        for dev in self.devices.values():
            dev.advance(now)

    # --- scenario by board port number ----------------------------------------------------
    def _where(self, port: int) -> tuple[SimulatedTps23861, int]:
        if not 1 <= port <= len(self.port_map):
            raise ValueError(f"no port {port} on the simulated board (1-{len(self.port_map)})")
        address, channel = self.port_map[port - 1]
        return self.chip(address), channel

    def plug(self, port: int, pd_class: int = 0, load_w: float = 5.0, *,
             class_code: int | None = None, signature: int = R.DETECT_VALID) -> SimDevice:
        if pd_class not in CLASS_ALLOWANCE_W:
            raise ValueError(f"class {pd_class} is not 0-4 (TPS23861 is 802.3at)")
        self.tick()
        chip, channel = self._where(port)
        device = SimDevice(pd_class=pd_class, load_w=load_w, signature=signature,
                           class_code=class_code)
        chip.plug(channel, device)
        return device

    def unplug(self, port: int) -> None:
        self.tick()
        chip, channel = self._where(port)
        chip.unplug(channel)

    def set_load(self, port: int, load_w: float) -> None:
        self.tick()
        chip, channel = self._where(port)
        device = chip.ports[channel - 1].device
        if device is None:
            raise ValueError(f"nothing plugged into port {port}")
        device.load_w = load_w

    def overload(self, port: int) -> None:
        self.tick()
        chip, channel = self._where(port)
        chip.overload(channel)

    def short(self, port: int) -> None:
        self.tick()
        chip, channel = self._where(port)
        chip.short(channel)

    def clear_short(self, port: int) -> None:
        self.tick()
        chip, channel = self._where(port)
        chip.clear_short(channel)

    def thermal_shutdown(self, chip: int) -> None:
        """`chip` is the chip's I2C address."""
        self.tick()
        self.chip(chip).thermal_shutdown()

    def thermal_recover(self, chip: int, temperature_c: float = 60.0) -> None:
        self.tick()
        self.chip(chip).thermal_recover(temperature_c)

    def set_temperature(self, chip: int, temperature_c: float) -> None:
        self.chip(chip).temperature_c = temperature_c

    def set_input_voltage(self, volts: float) -> None:
        """The board's 48-57 V rail feeds every chip."""
        self.tick()
        for dev in self.devices.values():
            if isinstance(dev, SimulatedTps23861):
                dev.set_input_voltage(volts)

    def power_on_reset(self, chip: int) -> None:
        self.tick()
        self.chip(chip).power_on_reset()

    # --- smbus2 API -----------------------------------------------------------------------
    def _device(self, op: str, address: int, register: int) -> SimulatedTps23861 | ForeignDevice:
        if self.closed:
            raise OSError(errnos.EBADF, "bus is closed")
        self.tick()
        for err in self.errors:
            if (err.address in (None, address)) and (err.register in (None, register)):
                if err.count is not None:
                    err.count -= 1
                    if err.count <= 0:
                        self.errors.remove(err)
                raise _os_error(err.errno)
        dev = self.devices.get(address)
        if dev is None:
            raise _os_error(errnos.EREMOTEIO)   # no ACK
        return dev

    def _read(self, address: int, register: int) -> int:
        return self._read_from(self._device("read", address, register), address, register)

    def _read_from(self, dev: SimulatedTps23861 | ForeignDevice, address: int,
                   register: int) -> int:
        value = dev.read(register) & 0xFF
        self.log.append(("read", address, register, value))
        return value

    def _write_to(self, dev: SimulatedTps23861 | ForeignDevice, address: int, register: int,
                  value: int) -> None:
        self.log.append(("write", address, register, value & 0xFF))
        dev.write(register, value & 0xFF)

    def _write(self, address: int, register: int, value: int) -> None:
        self._write_to(self._device("write", address, register), address, register, value)

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        """A read at the register pointer left by write_byte (or the last access)."""
        register = self.pointer.get(i2c_addr, 0)
        value = self._read(i2c_addr, register)
        self.pointer[i2c_addr] = (register + 1) & 0xFF
        return value

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        """Sets the register pointer (a command byte without data)."""
        self._device("write", i2c_addr, value)
        self.pointer[i2c_addr] = value & 0xFF

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._read(i2c_addr, register)

    def write_byte_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None:
        self._write(i2c_addr, register, value)

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        dev = self._device("read", i2c_addr, register)
        low = self._read_from(dev, i2c_addr, register)   # one transaction: no time passes
        return low | self._read_from(dev, i2c_addr, register + 1) << 8

    def write_word_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None:
        dev = self._device("write", i2c_addr, register)
        self._write_to(dev, i2c_addr, register, value & 0xFF)
        self._write_to(dev, i2c_addr, register + 1, (value >> 8) & 0xFF)

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        if not 0 < length <= 32:
            raise ValueError("Desired block length over 32 bytes")   # as smbus2 does
        dev = self._device("read", i2c_addr, register)
        # Auto-increment, read side effects included (a block over a CoR register clears it).
        return [self._read_from(dev, i2c_addr, reg) for reg in range(register, register + length)]

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int],
                             force: bool | None = None) -> None:
        if len(data) > 32:
            raise ValueError("Data length cannot exceed 32 bytes")
        dev = self._device("write", i2c_addr, register)
        for reg, value in enumerate(data, register):
            self._write_to(dev, i2c_addr, reg, value)

    def reads_of(self, address: int, register: int) -> int:
        """How many times a register was read over the bus (tests: CoR read exactly once)."""
        return sum(1 for op, a, r, _ in self.log if op == "read" and a == address and r == register)

    def writes_to(self, address: int, register: int) -> list[int]:
        """Values written to a register over the bus, oldest first."""
        return [v for op, a, r, v in self.log if op == "write" and a == address and r == register]

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> "SimulatedBus":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
