"""Token buckets: the rate and burst as configured, bounded memory, keys per client."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from adapters.web import ratelimit
from adapters.web.ratelimit import TokenBuckets, client_key, retry_after
from adapters.web.settings import Rate

RATE = Rate(per_minute=60, burst=3)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(clock)
    assert [buckets.take("k", RATE) for _ in range(3)] == [0, 0, 0]
    assert buckets.take("k", RATE) == pytest.approx(1.0)
    clock.now = 0.5
    assert buckets.take("k", RATE) == pytest.approx(0.5)
    clock.now = 1.0
    assert buckets.take("k", RATE) == 0
    assert buckets.take("other", RATE) == 0  # each key its own bucket
    assert buckets.take("k", None) == 0  # a rate switched off


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),  # the same /64: the same client
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("not an address", "not an address"),
    ],
)
def test_clients_are_counted_by_address_and_ipv6_by_64(address: str, key: str) -> None:
    assert client_key(address) == key


def test_memory_stays_bounded_and_the_recently_used_are_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 8)
    clock = Clock()
    buckets = TokenBuckets(clock)
    for n in range(40):  # a flood of new keys, each spending its burst
        for _ in range(3):
            buckets.take(f"flood {n}", RATE)
        assert len(buckets) <= 8
    assert buckets.take("flood 39", RATE) > 0  # the most recent are remembered: still refused
    clock.now = 10.0
    for n in range(20):  # refilled buckets are the first to go: nothing is lost by that
        buckets.take(f"later {n}", RATE)
    assert len(buckets) <= 8


def test_rates_too_small_to_mean_anything_are_refused() -> None:
    with pytest.raises(ValidationError):
        Rate(per_minute=5e-324, burst=1)
    assert retry_after(1e300) == "3600"
    assert retry_after(0.01) == "1"
