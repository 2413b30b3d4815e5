from fractions import Fraction

from appliance.recorder.camera import _Timeline

TB = Fraction(1, 90000)
T0 = 1_800_000_000_000_000


def test_a_burst_at_start_moves_the_anchor_back_to_the_real_arrival_pace():
    # 1 s of frames handed over at once at T0 (the probe), then real time.
    timeline = _Timeline(T0, 0, TB, lowest_us=0)
    for frame in range(25):
        timeline.settle(frame * 3600, T0 + frame * 100)
    for frame in range(25, 100):
        timeline.settle(frame * 3600, T0 + (frame - 25) * 40_000 + 40_000)
    assert abs(timeline.anchor_us - (T0 - 960_000)) <= 1000
    assert timeline.wall_us(99 * 3600) <= T0 + 75 * 40_000 + 1000


def test_the_anchor_never_moves_before_what_was_recorded():
    timeline = _Timeline(T0, 0, TB, lowest_us=T0 - 200_000)
    timeline.settle(90000, T0)  # frame 1 s in, arriving at T0: would mean anchor T0 - 1 s
    assert timeline.anchor_us == T0 - 200_000


def test_settling_ends_after_five_seconds_of_media():
    timeline = _Timeline(T0, 0, TB, lowest_us=0)
    timeline.settle(6 * 90000, T0)
    assert not timeline.settling and timeline.anchor_us == T0
