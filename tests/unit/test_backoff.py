import random

from hypothesis import given
from hypothesis import strategies as st

from engine.backoff import BASE_SECONDS, JITTER, backoff_seconds


def test_healthy_node_waits_the_interval():
    assert backoff_seconds(0, 60, cap=900) == 60.0


def test_delays_double_until_the_interval_then_stay():
    rng = random.Random(1)
    delays = [backoff_seconds(n, 60, cap=900, rng=rng) for n in range(1, 8)]
    nominal = [5, 10, 20, 40, 60, 60, 60]
    for got, want in zip(delays, nominal, strict=True):
        assert want * (1 - JITTER) <= got <= want * (1 + JITTER)


def test_cap_bounds_long_intervals():
    assert backoff_seconds(30, 3600, cap=900, rng=random.Random(2)) <= 900 * (1 + JITTER)


def test_jitter_spreads_retries():
    delays = {backoff_seconds(3, 60, cap=900, rng=random.Random(seed)) for seed in range(20)}
    assert len(delays) > 10


@given(st.integers(1, 200), st.integers(10, 3600), st.integers(0, 10_000))
def test_delay_is_bounded(failures, interval, seed):
    d = backoff_seconds(failures, interval, cap=900, rng=random.Random(seed))
    assert BASE_SECONDS * (1 - JITTER) <= d <= min(900, interval) * (1 + JITTER)
