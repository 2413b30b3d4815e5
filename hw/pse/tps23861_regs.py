"""The TI TPS23861 register map as data, shared by the driver and the simulator.

Sources (see shared/reference/hardware.md §1.2): the TI datasheet SLUSBX9 via the upstream
Linux hwmon driver (drivers/hwmon/tps23861.c), TI's TPS238x API header (tps238x.h) and a
community TPS23861 userspace driver; TI E2E answers for the identity registers. All
registers are 8 bits; 16-bit ADC values are two registers, low byte first, so one SMBus
word read returns them in the right order. Per-port nibbles: bit n is port n+1 in the low
nibble and bit n+4 is port n+1 in the high nibble.

Access kinds:
  ro   read only; writes are ignored by the part
  rw   read/write
  wo   write only command register; reads return 0
  cor  clear-on-read copy of the event register `shadow`: reading it returns the latched
       bits and clears them (in both copies); the shadow can be read without clearing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Register:
    address: int
    name: str
    access: str                  # ro | rw | wo | cor
    reset: int = 0
    shadow: int | None = None    # for cor registers: the peek-only copy
    description: str = ""


INTERRUPT = 0x00
INTERRUPT_MASK = 0x01
POWER_EVENT, POWER_EVENT_COR = 0x02, 0x03
DETECTION_EVENT, DETECTION_EVENT_COR = 0x04, 0x05
FAULT_EVENT, FAULT_EVENT_COR = 0x06, 0x07
START_EVENT, START_EVENT_COR = 0x08, 0x09
SUPPLY_EVENT, SUPPLY_EVENT_COR = 0x0A, 0x0B
PORT_STATUS = (0x0C, 0x0D, 0x0E, 0x0F)
POWER_STATUS = 0x10
I2C_ADDRESS = 0x11
OPERATING_MODE = 0x12
DISCONNECT_ENABLE = 0x13
DETECT_CLASS_ENABLE = 0x14
PORT_PRIORITY = 0x15
TIMING_CONFIG = 0x16
GENERAL_MASK_1 = 0x17
DETECT_CLASS_RESTART = 0x18
POWER_ENABLE = 0x19
RESET = 0x1A
ID = 0x1B
TEMPERATURE = 0x2C
INPUT_VOLTAGE = 0x2E                       # LSB at 0x2E, MSB at 0x2F
PORT_CURRENT = (0x30, 0x34, 0x38, 0x3C)    # LSB first
PORT_VOLTAGE = (0x32, 0x36, 0x3A, 0x3E)    # LSB first
POE_PLUS = 0x40
FIRMWARE_REVISION = 0x41
I2C_WATCHDOG = 0x42
DEVICE_ID = 0x43
PORT_RESISTANCE = (0x60, 0x62, 0x64, 0x66)  # LSB first

COR_REGISTERS = (POWER_EVENT_COR, DETECTION_EVENT_COR, FAULT_EVENT_COR, START_EVENT_COR,
                 SUPPLY_EVENT_COR)

# INTERRUPT (0x00) / INTERRUPT MASK (0x01) summary bits.
INT_PEC, INT_PGC, INT_DISF, INT_DETC, INT_CLASC, INT_IFAULT, INT_STRTF, INT_SUPF = (
    1 << n for n in range(8))

# SUPPLY EVENT (0x0A/0x0B).
SUPPLY_TSD = 0x80    # thermal shutdown
SUPPLY_VDUV = 0x40   # VDD (3.3 V) undervoltage: the part went through power-on reset
SUPPLY_VDWRN = 0x20  # VDD warning
SUPPLY_VPUV = 0x10   # VPWR (48 V) undervoltage

# RESET (0x1A), write only.
RESET_PORT_MASK = 0x0F   # RESP1-4
RESET_ALL = 0x10         # RESAL: every register back to its power-up value
RESET_CLINP = 0x40       # release the INT pin only
RESET_CLRAIN = 0x80      # clear every event bit and release the INT pin

# GENERAL MASK 1 (0x17): b0 selects the current-sense resistor.
SENSE_250_MOHM = 0x01    # set = 250 mOhm, clear = 255 mOhm (the default)

# OPERATING MODE (0x12): two bits per port, port 1 in b1:0.
MODE_OFF, MODE_MANUAL, MODE_SEMI_AUTO, MODE_AUTO = 0, 1, 2, 3

# Identity. 0x1B: b7:3 manufacturer (0x0A = TI, tps238x.h), b2:0 IC version.
# 0x43: b7:5 device id (0b111 on the TPS23861: community driver's check, and TI E2E
# threads that read 0xE1..0xE3 there), b4:0 silicon revision.
MFR_ID_TI = 0x0A
DEVICE_ID_TPS23861 = 0x7

# Port status (0x0C-0x0F): b3:0 detection, b7:4 class. Codes missing here are reserved.
DETECT_CODES = {0: "unknown", 1: "short", 3: "resistance_low", 4: "valid", 5: "resistance_high",
                6: "open", 8: "mosfet_fault", 9: "legacy", 10: "capacitance_beyond_clamp",
                11: "capacitance_low_delta", 12: "capacitance_out_of_range"}
# Class 0 is code 6, not 0 (0 means "not classified yet"); 5 is reserved (the upstream
# drivers print it as class 0).
CLASS_CODES = {0: "unknown", 1: "class_1", 2: "class_2", 3: "class_3", 4: "class_4",
               5: "reserved", 6: "class_0", 7: "overcurrent", 8: "mismatch"}
DETECT_VALID = 4
DETECT_OPEN = 6
DETECT_SHORT = 1
CLASS_CODE_FOR = {0: 6, 1: 1, 2: 2, 3: 3, 4: 4}   # IEEE class -> register code

# Scaling (hardware.md §1.2, from the datasheet via the upstream driver).
VOLTAGE_LSB_V = 3.662e-3                  # port and input voltage
CURRENT_LSB_A = {255: 61.039e-6, 250: 62.260e-6}   # by sense resistor (mOhm)
TEMPERATURE_LSB_C = 0.652
TEMPERATURE_OFFSET_C = -20.0
ADC_MASK = 0x3FFF                          # 14-bit results; b15:14 are reserved
RESISTANCE_LSB_OHM = 11.0966
RESISTANCE_LOW_LSB_OHM = 15.7216

# TIMING CONFIG (0x16) fields, for the simulator and logs (seconds).
TDIS_S = (0.360, 0.090, 0.180, 0.720)     # b1:0 disconnect delay
TICUT_S = (0.060, 0.030, 0.120, 0.240)    # b3:2 overload (ICUT) fault time
TSTART_S = (0.060, 0.030, 0.120, 0.060)   # b5:4 inrush time (11 is not documented: as 00)


def _registers() -> dict[int, Register]:
    regs = [
        Register(INTERRUPT, "INTERRUPT", "ro", description="summary of latched events & mask"),
        Register(INTERRUPT_MASK, "INTERRUPT MASK", "rw", 0x80),
        Register(POWER_EVENT, "POWER EVENT", "ro", description="lo PEC1-4, hi PGC1-4"),
        Register(POWER_EVENT_COR, "POWER EVENT CoR", "cor", shadow=POWER_EVENT),
        Register(DETECTION_EVENT, "DETECTION EVENT", "ro", description="lo DETC1-4, hi CLSC1-4"),
        Register(DETECTION_EVENT_COR, "DETECTION EVENT CoR", "cor", shadow=DETECTION_EVENT),
        Register(FAULT_EVENT, "FAULT EVENT", "ro", description="lo ICUT1-4, hi DISF1-4"),
        Register(FAULT_EVENT_COR, "FAULT EVENT CoR", "cor", shadow=FAULT_EVENT),
        Register(START_EVENT, "START/ILIM EVENT", "ro", description="lo STRT1-4, hi ILIM1-4"),
        Register(START_EVENT_COR, "START/ILIM EVENT CoR", "cor", shadow=START_EVENT),
        Register(SUPPLY_EVENT, "SUPPLY EVENT", "ro", SUPPLY_VDUV,
                 description="b7 TSD, b6 VDUV, b5 VDWRN, b4 VPUV"),
        Register(SUPPLY_EVENT_COR, "SUPPLY EVENT CoR", "cor", shadow=SUPPLY_EVENT),
        *(Register(a, f"PORT {n} STATUS", "ro", description="lo detect, hi class")
          for n, a in enumerate(PORT_STATUS, 1)),
        Register(POWER_STATUS, "POWER STATUS", "ro", description="lo PE1-4, hi PG1-4"),
        Register(I2C_ADDRESS, "I2C SLAVE ADDRESS", "ro", description="b6:0 address, b7 AUTO"),
        Register(OPERATING_MODE, "OPERATING MODE", "rw"),
        Register(DISCONNECT_ENABLE, "DISCONNECT ENABLE", "rw"),
        Register(DETECT_CLASS_ENABLE, "DETECT/CLASS ENABLE", "rw"),
        Register(PORT_PRIORITY, "PORT POWER PRIORITY", "rw"),
        Register(TIMING_CONFIG, "TIMING CONFIG", "rw"),
        Register(GENERAL_MASK_1, "GENERAL MASK 1", "rw"),
        Register(DETECT_CLASS_RESTART, "DETECT/CLASS RESTART", "wo"),
        Register(POWER_ENABLE, "POWER ENABLE", "wo", description="lo PWON1-4, hi PWOFF1-4"),
        Register(RESET, "RESET", "wo"),
        Register(ID, "ID", "ro"),
        Register(TEMPERATURE, "TEMPERATURE", "ro"),
        Register(INPUT_VOLTAGE, "INPUT VOLTAGE LSB", "ro"),
        Register(INPUT_VOLTAGE + 1, "INPUT VOLTAGE MSB", "ro"),
        *(Register(a + i, f"PORT {n} CURRENT {'LSB' if i == 0 else 'MSB'}", "ro")
          for n, a in enumerate(PORT_CURRENT, 1) for i in (0, 1)),
        *(Register(a + i, f"PORT {n} VOLTAGE {'LSB' if i == 0 else 'MSB'}", "ro")
          for n, a in enumerate(PORT_VOLTAGE, 1) for i in (0, 1)),
        Register(POE_PLUS, "POE PLUS", "rw", description="hi POEP1-4"),
        Register(FIRMWARE_REVISION, "FIRMWARE REVISION", "ro"),
        Register(I2C_WATCHDOG, "I2C WATCHDOG", "rw", 0x16),
        Register(DEVICE_ID, "DEVICE ID", "ro"),
        *(Register(a + i, f"PORT {n} DETECT RESISTANCE {'LSB' if i == 0 else 'MSB'}", "ro")
          for n, a in enumerate(PORT_RESISTANCE, 1) for i in (0, 1)),
    ]
    return {r.address: r for r in regs}


REGISTERS = _registers()


def register_name(address: int) -> str:
    reg = REGISTERS.get(address)
    return f"{reg.name} (0x{address:02X})" if reg else f"register 0x{address:02X}"
