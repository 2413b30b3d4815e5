"""TI TPS23861 driver: four 802.3at PSE ports per chip over SMBus (smbus2's API).

The driver takes an open bus object (`smbus2.SMBus(n)`, or the simulator in
`tps23861_sim`) and never opens hardware itself; several chips share one bus object at
different 7-bit addresses. Register facts are in `tps23861_regs` and
shared/reference/hardware.md §1.2.

Things that are easy to get wrong, and how this driver handles them:
- Events are clear-on-read (0x03, 0x05, 0x07, 0x09, 0x0B). `read_events()` reads each
  once and returns the bits exactly once. A bus error half way through keeps the bytes
  already read (the chip has cleared them) and hands them out with the next call.
  The poll loop does not write CLRAIN: an event latched between the reads and that write
  would be lost. Nothing else in the driver reads a CoR register.
- Class 0 is code 6 in the status register, not 0 (0 is "not classified yet"); code 5 is
  reserved (reported as RESERVED), 9-15 are undefined (INVALID). Detection codes 2, 7 and
  13-15 are reserved (INVALID).
- ADC words are 14 bits (mask 0x3FFF), low byte first, which is what SMBus read-word
  returns. A word with the reserved bits 15:14 set is not a measurement: reported as None
  with a note, never as a number.
- The current LSB depends on the sense resistor (61.039 uA at 255 mOhm, 62.260 uA at
  250 mOhm; both are 15.565 uV across the resistor). GENERAL MASK 1 b0 tells the chip
  which one is fitted; the board profile tells us.
"""

from __future__ import annotations

import logging
from typing import Callable, TypeVar

from hw.pse import tps23861_regs as R
from hw.pse.interface import (ChipEvents, ChipInfo, ChipStatus, ClassResult, Detection,
                              PortEvents, PortMode, PortStatus, PseBusError, PseController,
                              PseIdentityError, SMBusLike)

log = logging.getLogger(__name__)

T = TypeVar("T")

MODE_BITS = {PortMode.OFF: R.MODE_OFF, PortMode.MANUAL: R.MODE_MANUAL,
             PortMode.SEMI_AUTO: R.MODE_SEMI_AUTO, PortMode.AUTO: R.MODE_AUTO}
MODES = {v: k for k, v in MODE_BITS.items()}
DETECTIONS = {code: Detection(name) for code, name in R.DETECT_CODES.items()}
CLASSES = {code: ClassResult(name) for code, name in R.CLASS_CODES.items()}

# Interrupts we want on the INT pin if the board wires it (hardware.md init step 5).
INTERRUPT_MASK = (R.INT_PEC | R.INT_PGC | R.INT_DISF | R.INT_CLASC | R.INT_IFAULT
                  | R.INT_STRTF | R.INT_SUPF)


def decode_detection(code: int) -> Detection:
    return DETECTIONS.get(code & 0x0F, Detection.INVALID)


def decode_class(code: int) -> ClassResult:
    return CLASSES.get(code & 0x0F, ClassResult.INVALID)


def voltage_from_raw(word: int) -> float:
    return (word & R.ADC_MASK) * R.VOLTAGE_LSB_V


def current_ma_from_raw(word: int, sense_resistor_mohm: int) -> float:
    return (word & R.ADC_MASK) * R.CURRENT_LSB_A[sense_resistor_mohm] * 1000.0


def temperature_from_raw(byte: int) -> float:
    return byte * R.TEMPERATURE_LSB_C + R.TEMPERATURE_OFFSET_C


class Tps23861(PseController):
    port_count = 4

    def __init__(self, bus: SMBusLike, address: int, *, bus_number: int,
                 sense_resistor_mohm: int = 255, retries: int = 1) -> None:
        if sense_resistor_mohm not in R.CURRENT_LSB_A:
            raise ValueError(f"sense resistor must be 250 or 255 mOhm, not {sense_resistor_mohm}")
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"0x{address:02X} is not a 7-bit I2C device address")
        self.bus, self.address, self.bus_number = bus, address, bus_number
        self.sense_resistor_mohm = sense_resistor_mohm
        self.retries = retries
        self.name = f"TPS23861 at i2c-{bus_number}:0x{address:02X}"
        # CoR bytes already read from the chip (so cleared there) but not yet returned.
        self._pending = {reg: 0 for reg in R.COR_REGISTERS}

    # --- bus access, every failure named --------------------------------------------------
    def _transfer(self, what: str, reg: int, port: int | None, op: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return op()
            except OSError as exc:
                if attempt < self.retries:
                    continue
                where = f" for Port {port}" if port else ""
                raise PseBusError(
                    f"{self.name}: {what} {R.register_name(reg)}{where} failed: "
                    f"{exc.strerror or exc} (errno {exc.errno})",
                    bus=self.bus_number, address=self.address, register=reg, port=port,
                    errno=exc.errno) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, reg: int, port: int | None = None) -> int:
        return self._transfer("reading", reg, port,
                              lambda: self.bus.read_byte_data(self.address, reg)) & 0xFF

    def _read_word(self, reg: int, port: int | None = None) -> int:
        return self._transfer("reading", reg, port,
                              lambda: self.bus.read_word_data(self.address, reg)) & 0xFFFF

    def _write(self, reg: int, value: int, port: int | None = None) -> None:
        self._transfer("writing", reg, port,
                       lambda: self.bus.write_byte_data(self.address, reg, value & 0xFF))

    def _update(self, reg: int, mask: int, value: int, port: int | None = None) -> None:
        old = self._read(reg, port)
        new = (old & ~mask) | (value & mask)
        if new != old:
            self._write(reg, new, port)

    def _check_port(self, port: int) -> int:
        if not 1 <= port <= self.port_count:
            raise ValueError(f"{self.name}: no Port {port} (ports 1-{self.port_count})")
        return port - 1

    # --- set-up ---------------------------------------------------------------------------
    def open(self) -> ChipInfo:
        ident = self._read(R.ID)
        device = self._read(R.DEVICE_ID)
        mfr, did = ident >> 3, device >> 5
        if mfr != R.MFR_ID_TI or did != R.DEVICE_ID_TPS23861:
            hint = ""
            if ident == device and ident in (0x00, 0xFF):
                hint = " (every register reads the same: is this a PSE at all?)"
            raise PseIdentityError(
                f"i2c-{self.bus_number} address 0x{self.address:02X} is not a TPS23861: "
                f"ID (0x1B) reads 0x{ident:02X} (manufacturer 0x{mfr:02X}, expected "
                f"0x{R.MFR_ID_TI:02X} = TI) and DEVICE ID (0x43) reads 0x{device:02X} "
                f"(device {did}, expected {R.DEVICE_ID_TPS23861}){hint}; check the board "
                "profile's address",
                bus=self.bus_number, address=self.address, read={R.ID: ident, R.DEVICE_ID: device})
        firmware = self._read(R.FIRMWARE_REVISION)
        auto = bool(self._read(R.I2C_ADDRESS) & 0x80)
        sense = R.SENSE_250_MOHM if self.sense_resistor_mohm == 250 else 0
        self._update(R.GENERAL_MASK_1, R.SENSE_250_MOHM, sense)
        self._write(R.INTERRUPT_MASK, INTERRUPT_MASK)
        # Start clean: once, at open, before anyone relies on events (not in the poll loop).
        self._write(R.RESET, R.RESET_CLRAIN)
        self._pending = {reg: 0 for reg in R.COR_REGISTERS}
        info = ChipInfo(name=self.name, bus=self.bus_number, address=self.address,
                        device_id=(ident << 8) | device, firmware_revision=firmware,
                        silicon_revision=device & 0x1F, came_up_in_auto=auto)
        log.info("pse chip=%s id=0x%02X device=0x%02X firmware=%d auto=%s sense=%dmOhm",
                 self.name, ident, device, firmware, auto, self.sense_resistor_mohm)
        return info

    def configure_port(self, port: int, mode: PortMode, *, detect: bool = True,
                       classify: bool = True, disconnect: bool = True,
                       poe_plus: bool = False) -> None:
        i = self._check_port(port)
        self._update(R.DISCONNECT_ENABLE, 1 << i, (1 << i) if disconnect else 0, port)
        self._update(R.POE_PLUS, 1 << (i + 4), (1 << (i + 4)) if poe_plus else 0, port)
        self.set_mode(port, mode)
        self.set_detect_class(port, detect, classify)

    def set_mode(self, port: int, mode: PortMode) -> None:
        i = self._check_port(port)
        self._update(R.OPERATING_MODE, 0b11 << (2 * i), MODE_BITS[mode] << (2 * i), port)

    def set_detect_class(self, port: int, detect: bool, classify: bool) -> None:
        i = self._check_port(port)
        value = ((1 << i) if detect else 0) | ((1 << (i + 4)) if classify else 0)
        self._update(R.DETECT_CLASS_ENABLE, (1 << i) | (1 << (i + 4)), value, port)

    def set_poe_plus(self, port: int, enabled: bool) -> None:
        i = self._check_port(port)
        self._update(R.POE_PLUS, 1 << (i + 4), (1 << (i + 4)) if enabled else 0, port)

    # --- commands (write-only registers: no read-modify-write) -----------------------------
    def restart_detection(self, port: int) -> None:
        i = self._check_port(port)
        self._write(R.DETECT_CLASS_RESTART, (1 << i) | (1 << (i + 4)), port)

    def power_on(self, port: int) -> None:
        i = self._check_port(port)
        self._write(R.POWER_ENABLE, 1 << i, port)

    def power_off(self, port: int) -> None:
        i = self._check_port(port)
        self._write(R.POWER_ENABLE, 1 << (i + 4), port)

    def reset_port(self, port: int) -> None:
        i = self._check_port(port)
        self._write(R.RESET, 1 << i, port)

    # --- status ---------------------------------------------------------------------------
    def _shared(self) -> dict[int, int]:
        return {reg: self._read(reg) for reg in (R.POWER_STATUS, R.OPERATING_MODE,
                                                  R.DISCONNECT_ENABLE, R.DETECT_CLASS_ENABLE,
                                                  R.POE_PLUS)}

    def port_status(self, port: int) -> PortStatus:
        self._check_port(port)
        return self._port_status(port, self._shared())

    def _port_status(self, port: int, shared: dict[int, int]) -> PortStatus:
        i = port - 1
        notes: list[str] = []
        status = self._read(R.PORT_STATUS[i], port)
        detect_code, class_code = status & 0x0F, status >> 4
        detection, class_result = decode_detection(detect_code), decode_class(class_code)
        if detection is Detection.INVALID:
            notes.append(f"reserved detection code {detect_code}")
        if class_result is ClassResult.INVALID:
            notes.append(f"undefined class code {class_code}")
        power = shared[R.POWER_STATUS]
        pe, pg = bool(power & (1 << i)), bool(power & (1 << (i + 4)))
        if pg and not pe:
            notes.append("power good without power enable: ignored")
            pg = False
        voltage = self._adc(R.PORT_VOLTAGE[i], port, "voltage", notes)
        current = self._adc(R.PORT_CURRENT[i], port, "current", notes)
        return PortStatus(
            port=port, mode=MODES[(shared[R.OPERATING_MODE] >> (2 * i)) & 0b11],
            detect_enabled=bool(shared[R.DETECT_CLASS_ENABLE] & (1 << i)),
            class_enabled=bool(shared[R.DETECT_CLASS_ENABLE] & (1 << (i + 4))),
            disconnect_enabled=bool(shared[R.DISCONNECT_ENABLE] & (1 << i)),
            poe_plus=bool(shared[R.POE_PLUS] & (1 << (i + 4))),
            detection=detection, detection_code=detect_code,
            class_result=class_result, class_code=class_code,
            power_enabled=pe, power_good=pg,
            voltage_v=None if voltage is None else voltage_from_raw(voltage),
            current_ma=None if current is None
            else current_ma_from_raw(current, self.sense_resistor_mohm),
            notes=tuple(notes))

    def _adc(self, reg: int, port: int | None, what: str, notes: list[str]) -> int | None:
        word = self._read_word(reg, port)
        if word & ~R.ADC_MASK:
            notes.append(f"{what} word 0x{word:04X} has reserved bits 15:14 set: discarded")
            return None
        return word

    def status(self) -> ChipStatus:
        shared = self._shared()
        notes: list[str] = []
        temperature = self.temperature_c()
        raw_vin = self._adc(R.INPUT_VOLTAGE, None, "input voltage", notes)
        return ChipStatus(
            temperature_c=temperature,
            input_voltage_v=None if raw_vin is None else voltage_from_raw(raw_vin),
            ports=tuple(self._port_status(p, shared) for p in range(1, self.port_count + 1)),
            notes=tuple(notes))

    def temperature_c(self) -> float | None:
        return temperature_from_raw(self._read(R.TEMPERATURE))

    def input_voltage_v(self) -> float | None:
        raw = self._adc(R.INPUT_VOLTAGE, None, "input voltage", [])
        return None if raw is None else voltage_from_raw(raw)

    # --- events ---------------------------------------------------------------------------
    def read_events(self) -> ChipEvents:
        for reg in R.COR_REGISTERS:
            # A failure raises here; bytes read so far stay in _pending for the next call.
            self._pending[reg] |= self._read(reg)
        got, self._pending = self._pending, {reg: 0 for reg in R.COR_REGISTERS}
        return decode_events(got[R.POWER_EVENT_COR], got[R.DETECTION_EVENT_COR],
                             got[R.FAULT_EVENT_COR], got[R.START_EVENT_COR],
                             got[R.SUPPLY_EVENT_COR], self.port_count)


def decode_events(power: int, detection: int, fault: int, start: int, supply: int,
                  port_count: int = 4) -> ChipEvents:
    ports = tuple(
        PortEvents(port=i + 1,
                   power_enable_changed=bool(power & (1 << i)),
                   power_good_changed=bool(power & (1 << (i + 4))),
                   detection_done=bool(detection & (1 << i)),
                   classification_done=bool(detection & (1 << (i + 4))),
                   overload=bool(fault & (1 << i)),
                   disconnect=bool(fault & (1 << (i + 4))),
                   start_fault=bool(start & (1 << i)),
                   current_limit=bool(start & (1 << (i + 4))))
        for i in range(port_count))
    return ChipEvents(ports=ports,
                      thermal_shutdown=bool(supply & R.SUPPLY_TSD),
                      vdd_undervoltage=bool(supply & R.SUPPLY_VDUV),
                      vdd_warning=bool(supply & R.SUPPLY_VDWRN),
                      supply_undervoltage=bool(supply & R.SUPPLY_VPUV))
