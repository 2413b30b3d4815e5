"""The simulator behaves like the part at the register level (hardware.md §1.2, §6.2).

These drive it through the smbus2 methods only, as the driver or i2cget would.
"""

import errno
import time

import pytest

from appliance.core.clock import SimulatedClock
from hw.pse.board import load_layout
from hw.pse.tps23861_sim import SimulatedBus

A = 0x20


@pytest.fixture
def clock():
    return SimulatedClock()


@pytest.fixture
def bus(clock):
    bus = SimulatedBus(clock.monotonic)
    bus.add_chip(A)
    return bus


def rd(bus, reg):
    return bus.read_byte_data(A, reg)


def wr(bus, reg, value):
    bus.write_byte_data(A, reg, value)


def semi_auto_all(bus):
    wr(bus, 0x12, 0b10101010)
    wr(bus, 0x13, 0x0F)
    wr(bus, 0x14, 0xFF)
    wr(bus, 0x1A, 0x80)


def test_power_up_values(clock):
    bus = SimulatedBus(clock.monotonic)
    bus.add_chip(0x20)
    bus.add_chip(0x28, auto_bit=False)
    assert bus.read_byte_data(0x20, 0x11) == 0x80 | 0x20      # AUTO bit + address
    assert bus.read_byte_data(0x28, 0x11) == 0x28
    assert bus.read_byte_data(0x20, 0x12) == 0xFF             # AUTO bit: all ports auto
    assert bus.read_byte_data(0x28, 0x12) == 0x00             # else all off
    assert bus.read_byte_data(0x20, 0x01) == 0x80             # only SUPF unmasked
    assert bus.read_byte_data(0x20, 0x0A) == 0x40             # VDUV: power-on reset
    assert bus.read_byte_data(0x20, 0x00) == 0x80             # summary: SUPF
    assert bus.read_byte_data(0x20, 0x1B) >> 3 == 0x0A        # TI
    assert bus.read_byte_data(0x20, 0x43) >> 5 == 0b111       # TPS23861
    assert bus.read_byte_data(0x20, 0x16) == 0 and bus.read_byte_data(0x20, 0x17) == 0


def test_write_only_registers_read_zero_and_read_only_ignore_writes(bus):
    wr(bus, 0x12, 0)                    # all off, so the writes below change nothing else
    for reg in (0x18, 0x19, 0x1A):
        wr(bus, reg, 0x0F if reg != 0x1A else 0x40)
        assert rd(bus, reg) == 0
    ident = rd(bus, 0x1B)
    for reg, value in ((0x1B, 0x00), (0x10, 0xFF), (0x0C, 0x44), (0x2C, 0x00), (0x43, 0)):
        before = rd(bus, reg)
        wr(bus, reg, value)
        assert rd(bus, reg) == before
    assert rd(bus, 0x1B) == ident
    wr(bus, 0x16, 0b0101_0101)
    assert rd(bus, 0x16) == 0b0101_0101                      # read/write keeps the value


def test_clear_on_read_clears_both_copies_and_the_peek_copy_does_not(bus):
    assert rd(bus, 0x0A) == 0x40 and rd(bus, 0x0A) == 0x40     # peek copy: no clearing
    assert rd(bus, 0x0B) == 0x40                               # CoR copy returns it...
    assert rd(bus, 0x0B) == 0 and rd(bus, 0x0A) == 0           # ...and clears both
    assert rd(bus, 0x00) == 0


def test_interrupt_summary_follows_the_mask_and_clinp_clrain(bus, clock):
    chip = bus.chip(A)
    wr(bus, 0x1A, 0x80)
    assert not chip.int_asserted
    wr(bus, 0x01, 0x00)
    semi_auto_all(bus)
    bus.plug(1, 2, 4.0)
    clock.advance(0.5)
    assert rd(bus, 0x05) & 0x11 and rd(bus, 0x00) == 0, "events latched, all masked"
    wr(bus, 0x01, 0xFF)
    wr(bus, 0x19, 0x01)        # PWON1
    clock.advance(0.1)
    summary = rd(bus, 0x00)
    assert summary & 0x01 and summary & 0x02, "PEC and PGC"
    assert chip.int_asserted
    wr(bus, 0x1A, 0x40)        # CLINP: pin released, events kept
    assert not chip.int_asserted and rd(bus, 0x02) == 0x11
    wr(bus, 0x1A, 0x80)        # CLRAIN: events gone
    assert rd(bus, 0x02) == 0 and rd(bus, 0x00) & 0x03 == 0


def test_word_and_block_reads_auto_increment_with_side_effects(bus, clock):
    chip = bus.chip(A)
    chip.forced.update({0x2E: 0x34, 0x2F: 0x12})
    assert bus.read_word_data(A, 0x2E) == 0x1234              # low byte first
    assert bus.read_i2c_block_data(A, 0x2E, 2) == [0x34, 0x12]
    assert bus.read_i2c_block_data(A, 0x0A, 2) == [0x40, 0x40]
    assert rd(bus, 0x0A) == 0, "a block read through a CoR register clears it"
    with pytest.raises(ValueError):
        bus.read_i2c_block_data(A, 0, 33)
    bus.write_i2c_block_data(A, 0x12, [0x00, 0x0F, 0x00])
    assert [rd(bus, r) for r in (0x12, 0x13, 0x14)] == [0x00, 0x0F, 0x00]
    bus.write_word_data(A, 0x13, 0x0F05)
    assert rd(bus, 0x13) == 0x05 and rd(bus, 0x14) == 0x0F
    bus.write_byte(A, 0x1B)
    assert bus.read_byte(A) == rd(bus, 0x1B)
    assert bus.read_byte(A) == 0                               # 0x1C: nothing there


def test_semi_auto_detects_classifies_and_waits_for_pwon(bus, clock):
    semi_auto_all(bus)
    clock.advance(1.0)
    bus.plug(3, pd_class=0, load_w=9.0)
    clock.advance(0.45)   # a detect (0.3 s) and a class (0.05 s) cycle have finished
    status = rd(bus, 0x0E)
    assert status & 0x0F == 4 and status >> 4 == 6, "valid, class 0 is code 6"
    assert rd(bus, 0x05) == 0b0100_0100 | 0b1011, "DETC all ports, CLSC port 3"
    clock.advance(5)
    assert rd(bus, 0x10) == 0, "semi-auto never powers by itself"
    wr(bus, 0x19, 0b0100)
    assert rd(bus, 0x10) == 0b0100, "PE at once"
    clock.advance(0.061)
    assert rd(bus, 0x10) == 0b0100_0100, "PG after tSTART"
    assert rd(bus, 0x03) == 0b0100_0100


def test_semi_auto_ignores_pwon_without_a_valid_detection(bus, clock):
    semi_auto_all(bus)
    clock.advance(1)
    wr(bus, 0x19, 0x0F)
    clock.advance(1)
    assert rd(bus, 0x10) == 0 and rd(bus, 0x03) == 0


def test_auto_mode_powers_by_itself(bus, clock):
    bus.plug(2, pd_class=4, load_w=25.0)
    clock.advance(0.5)
    assert rd(bus, 0x10) == 0b0010_0010
    assert rd(bus, 0x0D) == 0x44


def test_manual_mode_is_one_shot_and_pwon_is_unconditional(bus, clock):
    wr(bus, 0x12, 0b01)        # port 1 manual, others off
    wr(bus, 0x14, 0x11)
    bus.plug(1, pd_class=1, load_w=2.0)
    clock.advance(0.4)
    assert rd(bus, 0x0C) == 0x14 and rd(bus, 0x14) == 0, "DETE1/CLE1 cleared after one shot"
    bus.unplug(1)
    clock.advance(1)
    assert rd(bus, 0x0C) == 0x14, "no new detection without a new DETE"
    wr(bus, 0x13, 0)           # no DC disconnect
    wr(bus, 0x19, 0x01)
    clock.advance(0.1)
    assert rd(bus, 0x10) == 0x11, "manual PWON powers even an empty port"


def test_off_mode_cuts_power_and_stops_detection(bus, clock):
    bus.plug(1, pd_class=2, load_w=4.0)
    clock.advance(0.5)
    assert rd(bus, 0x10) & 0x10
    rd(bus, 0x03)
    wr(bus, 0x12, 0xFC)        # port 1 off
    assert rd(bus, 0x10) & 0x11 == 0 and rd(bus, 0x03) == 0x11
    assert rd(bus, 0x0C) == 0
    rd(bus, 0x05)
    clock.advance(2)
    assert rd(bus, 0x0C) == 0 and rd(bus, 0x05) & 0x01 == 0


def test_disconnect_after_tdis_only_with_dc_disconnect_enabled(bus, clock):
    semi_auto_all(bus)
    for port in (1, 2):
        bus.plug(port, pd_class=2, load_w=4.0)
    clock.advance(0.5)
    wr(bus, 0x19, 0b0011)
    clock.advance(0.1)
    wr(bus, 0x13, 0b0001)      # DCDE on port 1 only
    wr(bus, 0x16, 0b01)        # tDIS = 90 ms
    rd(bus, 0x07)
    bus.unplug(1)
    bus.unplug(2)
    clock.advance(0.05)
    assert rd(bus, 0x10) & 0x11 == 0x11, "not yet: tDIS"
    clock.advance(0.05)
    assert rd(bus, 0x10) == 0b0010_0010, "port 1 off, port 2 never notices"
    assert rd(bus, 0x07) == 0b0001_0000, "DISF1"
    assert bus.read_word_data(A, 0x34) == 0, "port 2 draws nothing"


def test_overload_short_and_start_fault(bus, clock):
    semi_auto_all(bus)
    for port in (1, 2):
        bus.plug(port, pd_class=3, load_w=10.0)
    clock.advance(0.5)
    wr(bus, 0x19, 0b0011)
    clock.advance(0.1)
    bus.overload(1)
    bus.short(2)
    clock.advance(0.03)
    assert rd(bus, 0x10) == 0b0011_0011, "within tICUT / tLIM"
    assert bus.read_word_data(A, 0x30) > 15000, "pegged at the current limit"
    clock.advance(0.05)
    assert rd(bus, 0x10) == 0
    assert rd(bus, 0x07) & 0x0F == 0b0001, "ICUT1"
    assert rd(bus, 0x09) == 0b0010_0000, "ILIM2"
    clock.advance(1.5)         # cool-down, then detection again
    assert rd(bus, 0x0D) & 0x0F == 1, "port 2 detects a short"
    assert rd(bus, 0x0C) == 0x34, "port 1 back to valid, class 3"
    wr(bus, 0x12, 0b0101)      # manual: PWON into the short
    wr(bus, 0x19, 0b0010)
    clock.advance(0.1)
    assert rd(bus, 0x09) & 0x0F == 0b0010, "start fault on port 2"
    bus.clear_short(2)
    wr(bus, 0x12, 0b1010)
    wr(bus, 0x14, 0x33)
    clock.advance(2)
    assert rd(bus, 0x0D) == 0x34


def test_thermal_shutdown_and_recovery(bus, clock):
    bus.plug(1, pd_class=2, load_w=4.0)
    clock.advance(0.5)
    assert rd(bus, 0x10) == 0x11
    bus.thermal_shutdown(A)
    assert rd(bus, 0x10) == 0 and rd(bus, 0x0B) & 0x80
    assert rd(bus, 0x2C) == 255, "146 C"
    clock.advance(5)
    assert rd(bus, 0x10) == 0, "stays off while hot"
    bus.thermal_recover(A, 50.0)
    clock.advance(0.5)
    assert rd(bus, 0x10) == 0x11, "auto mode powers again"
    assert rd(bus, 0x2C) == round(70 / 0.652)


def test_input_undervoltage_turns_everything_off(bus, clock):
    bus.plug(4, pd_class=1, load_w=3.0)
    clock.advance(0.5)
    bus.set_input_voltage(40.0)
    assert rd(bus, 0x10) == 0x88 and rd(bus, 0x0A) & 0x10 == 0, "40 V is above VPUV"
    assert bus.read_word_data(A, 0x2E) == round(40.0 / 3.662e-3)
    bus.set_input_voltage(20.0)
    assert rd(bus, 0x10) == 0 and rd(bus, 0x0B) & 0x10
    clock.advance(3)
    assert rd(bus, 0x10) == 0
    bus.set_input_voltage(53.0)
    clock.advance(0.5)
    assert rd(bus, 0x10) == 0x88


def test_port_reset_and_reset_all(bus, clock):
    semi_auto_all(bus)
    bus.plug(1, pd_class=2, load_w=4.0)
    clock.advance(0.5)
    wr(bus, 0x19, 0x01)
    clock.advance(0.1)
    wr(bus, 0x1A, 0x01)        # RESP1
    assert rd(bus, 0x10) == 0 and rd(bus, 0x0C) == 0
    assert rd(bus, 0x12) == 0b10101010, "configuration kept"
    wr(bus, 0x1A, 0x10)        # RESAL
    assert rd(bus, 0x12) == 0xFF and rd(bus, 0x13) == 0x0F and rd(bus, 0x01) == 0x80


def test_detect_resistance_registers(bus, clock):
    semi_auto_all(bus)
    bus.plug(1, pd_class=2, load_w=4.0)
    bus.short(2)
    clock.advance(0.5)
    assert bus.read_word_data(A, 0x60) == round(25_000 / 11.0966)   # 25 kOhm signature
    assert bus.read_word_data(A, 0x62) >> 14 == 3                   # short
    assert bus.read_word_data(A, 0x64) >> 14 == 2                   # open


@pytest.mark.parametrize("code", [errno.EIO, errno.EREMOTEIO, errno.ETIMEDOUT])
def test_injected_errors_and_missing_addresses(bus, code):
    bus.inject_error(code, address=A, register=0x10, count=1)
    with pytest.raises(OSError) as err:
        rd(bus, 0x10)
    assert err.value.errno == code
    assert rd(bus, 0x10) == 0, "count=1: the next one works"
    bus.inject_error(code, count=None)
    for reg in (0x00, 0x2C):
        with pytest.raises(OSError):
            rd(bus, reg)
    bus.clear_errors()
    with pytest.raises(OSError) as err:
        bus.read_byte_data(0x55, 0x00)
    assert err.value.errno == errno.EREMOTEIO, "nobody acknowledges 0x55"
    bus.close()
    with pytest.raises(OSError):
        rd(bus, 0)


def test_foreign_device_is_a_plain_register_bank(bus):
    bus.add_foreign_device(0x21, {0x1B: 0x12}, default=0xFF)
    assert bus.read_byte_data(0x21, 0x1B) == 0x12 and bus.read_byte_data(0x21, 0x43) == 0xFF
    bus.write_byte_data(0x21, 0x43, 0x01)
    assert bus.read_byte_data(0x21, 0x43) == 0x01


def test_an_hour_of_idle_detection_is_simulated_quickly(clock):
    bus = SimulatedBus(clock.monotonic)
    bus.add_chip(0x20)
    bus.add_chip(0x28)
    for address in (0x20, 0x28):
        bus.write_byte_data(address, 0x12, 0b10101010)
    bus.plug(2, 3, 6.0)
    started = time.perf_counter()
    for _ in range(24):
        clock.advance(3600)
        bus.tick()
    assert time.perf_counter() - started < 1.0
    assert bus.read_byte_data(0x20, 0x0D) == 0x34
    assert bus.read_byte_data(0x20, 0x05) == 0b0010_1111


def test_from_layout_builds_the_sim_board(clock):
    layout = load_layout("sim")
    bus = SimulatedBus.from_layout(layout, clock.monotonic)
    assert sorted(bus.devices) == [0x20, 0x28]
    assert bus.port_map[4] == (0x28, 1)
    clock.advance(0.5)   # the parts come up in auto mode: the scripted cameras get power
    assert bus.read_byte_data(0x20, 0x10) == 0b0011_0011
    assert bus.read_byte_data(0x28, 0x10) == 0
    with pytest.raises(ValueError, match="no port 9"):
        bus.plug(9, 1, 1.0)
    with pytest.raises(ValueError, match="class 5"):
        bus.plug(3, 5, 1.0)
