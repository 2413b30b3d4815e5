"""The TPS23861 driver against the register-level simulator.

Expected figures are worked out here from the datasheet formulas (hardware.md §1.2), not
taken from the driver: V = raw x 3.662 mV, I = raw x 61.039 uA (255 mOhm) or 62.260 uA
(250 mOhm), T = raw x 0.652 - 20 C. Register addresses are written as numbers.
"""

import errno

import pytest

from appliance.core.clock import SimulatedClock
from hw.pse.interface import (ClassResult, Detection, Fault, PortMode, PseBusError,
                              PseIdentityError)
from hw.pse.tps23861 import Tps23861
from hw.pse.tps23861_sim import SimulatedBus


@pytest.fixture
def clock():
    return SimulatedClock()


@pytest.fixture
def bus(clock):
    bus = SimulatedBus(clock.monotonic, bus_number=1)
    bus.add_chip(0x20)
    return bus


@pytest.fixture
def drv(bus):
    drv = Tps23861(bus, 0x20, bus_number=1)
    drv.open()
    return drv


def semi_auto(drv, *ports):
    for port in ports or (1, 2, 3, 4):
        drv.configure_port(port, PortMode.SEMI_AUTO, poe_plus=True)


# --- identity and set-up -----------------------------------------------------------------

def test_open_identifies_the_part_and_sets_it_up(bus, clock):
    chip = bus.chip(0x20)
    assert chip.peek(0x0A) & 0x40, "a fresh part has VDUV latched (power-on reset)"
    info = Tps23861(bus, 0x20, bus_number=1).open()
    assert info.name == "TPS23861 at i2c-1:0x20"
    assert info.device_id == (0x54 << 8) | 0xE1 and info.silicon_revision == 0x01
    assert info.firmware_revision == 2 and info.came_up_in_auto
    assert chip.peek(0x17) & 0x01 == 0, "255 mOhm: GENERAL MASK 1 b0 clear"
    assert chip.peek(0x01) == 0b1111_0111, "all interrupts but DETC unmasked"
    assert bus.writes_to(0x20, 0x1A) == [0x80], "CLRAIN once at open"
    assert chip.peek(0x0A) == 0 and chip.peek(0x00) == 0


def test_open_with_a_250_mohm_resistor_sets_the_sense_bit(clock):
    bus = SimulatedBus(clock.monotonic)
    chip = bus.add_chip(0x20, sense_resistor_mohm=250)
    Tps23861(bus, 0x20, bus_number=1, sense_resistor_mohm=250).open()
    assert chip.peek(0x17) & 0x01 == 1


@pytest.mark.parametrize("ident, device", [(0x00, 0x00), (0xFF, 0xFF), (0x54, 0x25),
                                           (0x7D, 0xE1)])
def test_a_wrong_part_is_refused_with_what_was_read(clock, ident, device):
    bus = SimulatedBus(clock.monotonic, bus_number=3)
    bus.add_foreign_device(0x21, {0x1B: ident, 0x43: device}, default=ident)
    with pytest.raises(PseIdentityError) as err:
        Tps23861(bus, 0x21, bus_number=3).open()
    text = str(err.value)
    assert "i2c-3 address 0x21 is not a TPS23861" in text
    assert f"ID (0x1B) reads 0x{ident:02X}" in text and f"(0x43) reads 0x{device:02X}" in text
    assert err.value.read == {0x1B: ident, 0x43: device}
    assert not any(op == "write" for op, *_ in bus.log), "nothing written to a foreign part"


def test_a_simulated_chip_with_another_identity_is_refused(clock):
    bus = SimulatedBus(clock.monotonic)
    bus.add_chip(0x20, identity=(0x54, 0x41))   # DID 2: a TPS23881-like part
    with pytest.raises(PseIdentityError, match=r"device 2, expected 7"):
        Tps23861(bus, 0x20, bus_number=1).open()


def test_nothing_at_the_address_is_a_bus_error_naming_it(clock):
    bus = SimulatedBus(clock.monotonic)
    with pytest.raises(PseBusError) as err:
        Tps23861(bus, 0x24, bus_number=1).open()
    assert "TPS23861 at i2c-1:0x24: reading ID (0x1B) failed" in str(err.value)
    assert err.value.errno == errno.EREMOTEIO and err.value.address == 0x24


def test_bad_arguments_are_refused(bus):
    with pytest.raises(ValueError):
        Tps23861(bus, 0x20, bus_number=1, sense_resistor_mohm=100)
    with pytest.raises(ValueError):
        Tps23861(bus, 0x90, bus_number=1)
    with pytest.raises(ValueError, match="no Port 5"):
        Tps23861(bus, 0x20, bus_number=1).power_on(5)


# --- register writes ---------------------------------------------------------------------

def test_configure_port_writes_each_field_in_place(bus, drv):
    chip = bus.chip(0x20)
    for port in (1, 2, 3, 4):
        drv.configure_port(port, PortMode.OFF, detect=False, classify=False, disconnect=False)
    assert (chip.peek(0x12), chip.peek(0x13), chip.peek(0x14), chip.peek(0x40)) == (0, 0, 0, 0)
    drv.configure_port(3, PortMode.SEMI_AUTO, detect=True, classify=True, disconnect=True,
                       poe_plus=True)
    assert chip.peek(0x12) == 0b10 << 4          # port 3 = bits 5:4, semi-auto = 10
    assert chip.peek(0x13) == 0b0100             # DCDE3
    assert chip.peek(0x14) == 0b0100_0100        # CLE3 | DETE3
    assert chip.peek(0x40) == 0b0100_0000        # POEP3
    drv.set_mode(4, PortMode.AUTO)
    drv.set_mode(1, PortMode.MANUAL)
    assert chip.peek(0x12) == (0b11 << 6) | (0b10 << 4) | 0b01
    drv.set_detect_class(3, detect=True, classify=False)
    assert chip.peek(0x14) == 0b0000_0100
    drv.set_poe_plus(3, False)
    assert chip.peek(0x40) == 0


def test_command_registers_get_exactly_the_port_bits(bus, drv):
    drv.restart_detection(2)
    drv.power_on(3)
    drv.power_off(4)
    drv.reset_port(1)
    assert bus.writes_to(0x20, 0x18) == [0b0010_0010]   # RCL2 | RDET2
    assert bus.writes_to(0x20, 0x19) == [0b0000_0100, 0b1000_0000]   # PWON3, PWOFF4
    assert bus.writes_to(0x20, 0x1A) == [0x80, 0b0000_0001]   # CLRAIN at open, RESP1
    assert all(reg not in (0x18, 0x19, 0x1A) for op, _, reg, _ in bus.log if op == "read"), \
        "write-only registers are never read-modify-written"


# --- status and scaling ------------------------------------------------------------------

def test_status_follows_detection_classification_and_power(bus, drv, clock):
    semi_auto(drv)
    clock.advance(1.0)   # detection cycles of 0.3 s since 1000.0: one runs 1000.9-1001.2
    bus.plug(2, pd_class=3, load_w=6.5)
    clock.advance(0.1)
    assert drv.port_status(2).detection is Detection.OPEN   # the last finished cycle
    clock.advance(0.12)
    st = drv.port_status(2)
    assert st.detection is Detection.VALID and st.class_result is ClassResult.UNKNOWN
    clock.advance(0.1)
    st = drv.port_status(2)
    assert st.class_result is ClassResult.CLASS_3 and st.pd_class == 3
    assert st.mode is PortMode.SEMI_AUTO and st.poe_plus and st.disconnect_enabled
    assert not st.power_enabled and st.voltage_v == 0 and st.current_ma == 0
    drv.power_on(2)
    assert drv.port_status(2).power_enabled and not drv.port_status(2).power_good
    clock.advance(0.061)   # tSTART = 60 ms (TIMING CONFIG 00)
    st = drv.port_status(2)
    assert st.power_good
    # 53.5 V rail less 50 mV: raw = round(53.45 / 3.662 mV) = 14596 -> 14596 x 3.662 mV
    assert st.voltage_v == pytest.approx(14596 * 3.662e-3) == pytest.approx(53.450552)
    # 6.5 W / 53.45 V = 121.61 mA -> raw round(121.61 mA / 61.039 uA) = 1992
    assert st.current_ma == pytest.approx(1992 * 0.061039) == pytest.approx(121.590, abs=1e-3)
    assert st.power_w == pytest.approx(6.5, abs=0.01)
    for other in (1, 3, 4):
        assert drv.port_status(other).detection is Detection.OPEN


@pytest.mark.parametrize("raw, volts", [(0, 0.0), (1, 0.003662), (13716, 50.227992),
                                        (0x3FFF, 59.994546)])
def test_port_voltage_scaling(bus, drv, raw, volts):
    chip = bus.chip(0x20)
    chip.forced.update({0x36: raw & 0xFF, 0x37: raw >> 8})     # port 2 voltage, LSB first
    assert drv.port_status(2).voltage_v == pytest.approx(volts, abs=1e-6)


@pytest.mark.parametrize("sense, raw, milliamps", [
    (255, 256, 15.625984),      # 256 x 61.039 uA
    (255, 0x3FFF, 1000.001937),  # full scale: 16383 x 61.039 uA
    (250, 256, 15.93856),       # 256 x 62.260 uA
    (250, 5000, 311.3),         # 5000 x 62.260 uA
])
def test_port_current_scaling_by_sense_resistor(clock, sense, raw, milliamps):
    bus = SimulatedBus(clock.monotonic)
    chip = bus.add_chip(0x20, sense_resistor_mohm=sense)
    drv = Tps23861(bus, 0x20, bus_number=1, sense_resistor_mohm=sense)
    drv.open()
    chip.forced.update({0x3C: raw & 0xFF, 0x3D: raw >> 8})     # port 4 current
    assert drv.port_status(4).current_ma == pytest.approx(milliamps, abs=1e-6)


@pytest.mark.parametrize("raw, celsius", [(0, -20.0), (20, -6.96), (100, 45.2), (255, 146.26)])
def test_temperature_scaling_including_below_zero(bus, drv, raw, celsius):
    bus.chip(0x20).forced[0x2C] = raw
    assert drv.temperature_c() == pytest.approx(celsius, abs=1e-9)


def test_input_voltage_scaling(bus, drv):
    chip = bus.chip(0x20)
    chip.forced.update({0x2E: 14745 & 0xFF, 0x2F: 14745 >> 8})
    assert drv.input_voltage_v() == pytest.approx(14745 * 3.662e-3) == pytest.approx(53.99619)
    status = drv.status()
    assert status.input_voltage_v == pytest.approx(53.99619) and status.notes == ()


def test_real_load_reads_back_within_one_lsb(bus, drv, clock):
    semi_auto(drv)
    bus.set_input_voltage(50.0)
    bus.plug(1, pd_class=4, load_w=22.0)
    clock.advance(1)
    drv.power_on(1)
    clock.advance(0.1)
    st = drv.port_status(1)
    assert st.voltage_v == pytest.approx(49.95, abs=3.662e-3)
    assert st.current_ma == pytest.approx(22.0 / 49.95 * 1000, abs=0.062)


# --- impossible values -------------------------------------------------------------------

@pytest.mark.parametrize("byte, detection, klass, pd_class, note", [
    (0x64, Detection.VALID, ClassResult.CLASS_0, 0, None),       # class 0 is code 6
    (0x04, Detection.VALID, ClassResult.UNKNOWN, None, None),    # code 0: not classified yet
    (0x54, Detection.VALID, ClassResult.RESERVED, None, None),   # code 5: reserved
    (0x74, Detection.VALID, ClassResult.OVERCURRENT, None, None),
    (0x84, Detection.VALID, ClassResult.MISMATCH, None, None),
    (0x94, Detection.VALID, ClassResult.INVALID, None, "undefined class code 9"),
    (0xF4, Detection.VALID, ClassResult.INVALID, None, "undefined class code 15"),
    (0x42, Detection.INVALID, ClassResult.CLASS_4, 4, "reserved detection code 2"),
    (0x07, Detection.INVALID, ClassResult.UNKNOWN, None, "reserved detection code 7"),
    (0x0D, Detection.INVALID, ClassResult.UNKNOWN, None, "reserved detection code 13"),
    (0x01, Detection.SHORT, ClassResult.UNKNOWN, None, None),
    (0x08, Detection.MOSFET_FAULT, ClassResult.UNKNOWN, None, None),
    (0x0C, Detection.CAPACITANCE_OUT_OF_RANGE, ClassResult.UNKNOWN, None, None),
])
def test_status_codes_decode_and_reserved_ones_are_flagged(bus, drv, byte, detection, klass,
                                                           pd_class, note):
    bus.chip(0x20).forced[0x0E] = byte   # port 3 status
    st = drv.port_status(3)
    assert (st.detection, st.class_result, st.pd_class) == (detection, klass, pd_class)
    assert st.detection_code == byte & 0x0F and st.class_code == byte >> 4
    assert (note in st.notes[0]) if note else st.notes == ()
    assert drv.port_status(2).notes == (), "the other ports are unaffected"


def test_adc_words_with_reserved_bits_are_not_numbers(bus, drv):
    chip = bus.chip(0x20)
    chip.forced.update({0x33: 0xC0 | 0x35, 0x32: 0x94})   # port 1 voltage, b15:14 set
    chip.forced.update({0x31: 0x40})                      # port 1 current, b14 set
    chip.forced.update({0x2F: 0x80})                      # input voltage, b15 set
    status = drv.status()
    p1 = status.ports[0]
    assert p1.voltage_v is None and p1.current_ma is None and p1.power_w is None
    assert any("voltage word 0xF594 has reserved bits" in n for n in p1.notes)
    assert status.input_voltage_v is None and "input voltage" in status.notes[0]
    assert drv.input_voltage_v() is None
    assert all(p.voltage_v is not None and p.notes == () for p in status.ports[1:])


def test_power_good_without_power_enable_is_not_believed(bus, drv):
    bus.chip(0x20).forced[0x10] = 0b0010_0000   # PG2 without PE2
    st = drv.port_status(2)
    assert not st.power_good and "power good without power enable" in st.notes[0]


# --- events: clear on read ---------------------------------------------------------------

def test_each_event_is_returned_exactly_once(bus, drv, clock):
    semi_auto(drv)
    drv.read_events()
    bus.plug(1, pd_class=2, load_w=4.0)
    clock.advance(0.4)
    ev = drv.read_events()
    assert ev.port(1).detection_done and ev.port(1).classification_done
    assert not ev.port(1).power_good_changed
    assert not drv.read_events().any, "nothing twice"
    drv.power_on(1)
    clock.advance(0.1)
    ev = drv.read_events()
    assert ev.port(1).power_enable_changed and ev.port(1).power_good_changed
    assert not drv.read_events().port(1).power_good_changed


def test_read_events_reads_each_clear_on_read_register_once_and_no_peek_copy(bus, drv):
    before = {reg: bus.reads_of(0x20, reg) for reg in range(0x00, 0x0C)}
    drv.read_events()
    for reg in (0x03, 0x05, 0x07, 0x09, 0x0B):
        assert bus.reads_of(0x20, reg) - before[reg] == 1
    for reg in (0x00, 0x02, 0x04, 0x06, 0x08, 0x0A):
        assert bus.reads_of(0x20, reg) == before[reg]
    drv.status()
    for reg in (0x03, 0x05, 0x07, 0x09, 0x0B):
        assert bus.reads_of(0x20, reg) - before[reg] == 1, "status never touches CoR"
    assert bus.writes_to(0x20, 0x1A) == [0x80], "no CLRAIN from the poll path"


def test_events_survive_a_bus_error_half_way(bus, drv, clock):
    semi_auto(drv)
    bus.plug(1, pd_class=4, load_w=20.0)
    clock.advance(0.4)
    drv.power_on(1)
    clock.advance(0.1)
    bus.overload(1)
    clock.advance(0.1)
    chip = bus.chip(0x20)
    assert chip.peek(0x02) and chip.peek(0x06) & 0x01, "power and ICUT events latched"
    bus.inject_error(errno.ETIMEDOUT, address=0x20, register=0x07, count=2)  # retry fails too
    with pytest.raises(PseBusError) as err:
        drv.read_events()
    assert "reading FAULT EVENT CoR (0x07)" in str(err.value)
    assert chip.peek(0x02) == 0, "0x03 was read (so cleared on the chip) before the error"
    ev = drv.read_events()
    assert ev.port(1).power_enable_changed and ev.port(1).power_good_changed, "not lost"
    assert ev.port(1).overload
    again = drv.read_events()
    assert not again.port(1).power_good_changed and not again.port(1).overload, "not doubled"


def test_an_event_between_two_reads_is_in_the_second(bus, drv, clock):
    semi_auto(drv)
    bus.plug(4, pd_class=1, load_w=3.0)
    clock.advance(0.4)
    drv.power_on(4)
    clock.advance(0.1)
    drv.read_events()
    bus.unplug(4)
    clock.advance(0.4)   # tDIS 360 ms
    ev = drv.read_events()
    assert ev.port(4).disconnect and ev.port(4).power_good_changed
    assert ev.port(4).faults == {Fault.DISCONNECT}


def test_supply_events_decode(bus, drv, clock):
    semi_auto(drv)
    bus.thermal_shutdown(0x20)
    ev = drv.read_events()
    assert ev.thermal_shutdown and not ev.supply_undervoltage
    bus.set_input_voltage(20.0)
    ev = drv.read_events()
    assert ev.supply_undervoltage and not ev.thermal_shutdown
    bus.power_on_reset(0x20)
    assert drv.read_events().vdd_undervoltage


# --- bus errors --------------------------------------------------------------------------

@pytest.mark.parametrize("code", [errno.EIO, errno.EREMOTEIO, errno.ETIMEDOUT])
def test_bus_errors_name_chip_register_and_port_and_spare_the_others(bus, drv, code):
    bus.inject_error(code, address=0x20, register=0x0D, count=None)   # PORT 2 STATUS
    with pytest.raises(PseBusError) as err:
        drv.port_status(2)
    text = str(err.value)
    assert "TPS23861 at i2c-1:0x20: reading PORT 2 STATUS (0x0D) for Port 2 failed" in text
    assert f"errno {code}" in text
    assert (err.value.port, err.value.register, err.value.errno) == (2, 0x0D, code)
    for port in (1, 3, 4):
        assert drv.port_status(port).detection is not None
    bus.clear_errors()
    assert drv.port_status(2).port == 2


def test_a_write_error_names_the_port(bus, drv):
    bus.inject_error(errno.EIO, address=0x20, register=0x19, count=2)
    with pytest.raises(PseBusError, match=r"writing POWER ENABLE \(0x19\) for Port 3 failed"):
        drv.power_on(3)


def test_one_transient_error_is_retried(bus, drv):
    bus.inject_error(errno.EIO, address=0x20, register=0x2C, count=1)
    assert drv.temperature_c() == pytest.approx(45.2)
    bus.inject_error(errno.EIO, address=0x20, register=0x2C, count=1)
    no_retry = Tps23861(bus, 0x20, bus_number=1, retries=0)
    with pytest.raises(PseBusError):
        no_retry.temperature_c()


def test_two_chips_share_one_bus(clock):
    bus = SimulatedBus(clock.monotonic)
    bus.add_chip(0x20)
    bus.add_chip(0x28)
    a, b = Tps23861(bus, 0x20, bus_number=1), Tps23861(bus, 0x28, bus_number=1)
    a.open()
    b.open()
    semi_auto(a)
    semi_auto(b)
    bus.plug(6, pd_class=2, load_w=5.0)     # board port 6 = chip 0x28 channel 2
    clock.advance(0.5)
    assert b.port_status(2).class_result is ClassResult.CLASS_2
    assert a.port_status(2).detection is Detection.OPEN
    bus.inject_error(errno.EREMOTEIO, address=0x20, count=None)
    with pytest.raises(PseBusError):
        a.status()
    assert b.status().ports[1].pd_class == 2
