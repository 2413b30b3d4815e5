import random

from appliance.recorder.backoff import Backoff


def test_delays_double_up_to_the_cap_with_downward_jitter():
    backoff = Backoff(1.0, 30.0, random.Random(1))
    delays = [backoff.next_delay() for _ in range(10)]
    bases = [1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    for delay, base in zip(delays, bases):
        assert base * 0.5 <= delay <= base


def test_reset_starts_over():
    backoff = Backoff(1.0, 30.0, random.Random(1))
    for _ in range(6):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_jitter_spreads_cameras_that_failed_together():
    delays = {round(Backoff(1.0, 30.0, random.Random(seed)).next_delay(), 3) for seed in range(20)}
    assert len(delays) > 10


def test_jitter_never_lengthens_a_deadline():
    backoff = Backoff(1.0, 30.0, random.Random(3))
    assert all(0.75 <= backoff.jitter(1.0) <= 1.0 for _ in range(100))
