from fractions import Fraction

from appliance.recorder.timestamps import TimestampRepair

TB = Fraction(1, 90000)
FRAME = 3600  # 25 fps


def feed(repair, dts_list):
    return [repair.fix(d, d, None).dts for d in dts_list]


def test_first_packet_without_timestamp_gets_the_next_expected_time():
    repair = TimestampRepair(TB, FRAME)
    first = repair.fix(None, None, None)
    second = repair.fix(3600, 3600, None)
    assert (first.dts, first.pts) == (0, 0)
    assert second.dts == 3600 and not second.repaired
    assert repair.repairs == 1


def test_backwards_jump_continues_monotonically_with_one_repair():
    repair = TimestampRepair(TB, FRAME)
    out = feed(repair, [0, 3600, 7200, 10800, -512, 3088, 6688])
    assert out == [0, 3600, 7200, 10800, 14400, 18000, 21600]
    assert repair.repairs == 1


def test_forward_jump_while_packets_keep_coming_is_closed_up():
    repair = TimestampRepair(TB, FRAME)
    out = feed(repair, [0, 3600, 7200, 7200 + 90000 * 3600, 7200 + 90000 * 3600 + 3600])
    assert out == [0, 3600, 7200, 10800, 14400]


def test_small_jitter_is_kept_as_it_is():
    repair = TimestampRepair(TB, FRAME)
    out = feed(repair, [0, 3590, 7210, 10800])
    assert out == [0, 3590, 7210, 10800]
    assert repair.repairs == 0


def test_duplicate_dts_is_moved_forward():
    repair = TimestampRepair(TB, FRAME)
    out = feed(repair, [0, 3600, 3600, 7200])
    assert out[2] > out[1] and out[3] > out[2]


def test_pts_before_dts_is_clamped_and_b_frame_offset_kept():
    repair = TimestampRepair(TB, FRAME)
    a = repair.fix(0, 7200, None)      # B-frame stream: pts ahead of dts
    b = repair.fix(3600, 1000, None)   # broken: pts before dts
    assert (a.dts, a.pts) == (0, 7200)
    assert b.pts == b.dts == 3600


def test_output_is_strictly_increasing_for_hostile_input():
    import random

    rng = random.Random(7)
    repair = TimestampRepair(TB, FRAME)
    last = None
    for _ in range(2000):
        choice = rng.random()
        dts = None if choice < 0.05 else rng.randint(-10**9, 10**9)
        out = repair.fix(dts, None, None).dts
        assert last is None or out > last
        last = out
