"""The Teams pacing windows, driven by a fake clock."""

from __future__ import annotations

import pytest

from adapters.teams.pacing import TENANT_WINDOWS, THREAD_WINDOWS, SlidingWindows


def send_all(windows: SlidingWindows, count: int, start: float = 0.0) -> list[float]:
    times, now = [], start
    for _ in range(count):
        now = windows.earliest(now)
        windows.record(now)
        times.append(now)
    return times


def violations(times: list[float], limits: tuple[tuple[int, float], ...]) -> list[str]:
    bad = []
    for limit, seconds in limits:
        for i, t in enumerate(times):
            inside = [u for u in times[i:] if u < t + seconds]
            if len(inside) > limit:
                bad.append(f"{len(inside)} sends in {seconds}s from t={t}")
    return bad


def test_burst_of_100_never_exceeds_thread_limits() -> None:
    times = send_all(SlidingWindows(THREAD_WINDOWS), 100)
    assert violations(times, THREAD_WINDOWS) == []
    # 7 at once, then the 8/2 s and 60/30 s windows set the pace: no idle time beyond them.
    assert times[:7] == [0.0] * 7
    assert times[7] == 1.0
    assert times[59] < 30.0 and times[60] >= 30.0


@pytest.mark.parametrize(
    ("count", "expected_last"), [(7, 0.0), (8, 1.0), (9, 2.0), (15, 2.0), (16, 3.0)]
)
def test_exact_pace(count: int, expected_last: float) -> None:
    assert send_all(SlidingWindows(THREAD_WINDOWS), count)[-1] == expected_last


def test_tenant_window() -> None:
    times = send_all(SlidingWindows(TENANT_WINDOWS), 120)
    assert violations(times, TENANT_WINDOWS) == []
    assert times[49] == 0.0 and times[50] == 1.0 and times[119] == 2.0


def test_old_sends_are_forgotten() -> None:
    windows = SlidingWindows(THREAD_WINDOWS)
    send_all(windows, 7)
    assert windows.earliest(5000.0) == 5000.0


def over_limit(times: list[float], limits: tuple[tuple[int, float], ...]) -> list[str]:
    """Half-open windows [t, t + W) holding more than the limit, tested as ``u - t < W``."""
    bad = []
    for limit, seconds in limits:
        for i in range(limit, len(times)):
            if times[i] - times[i - limit] < seconds:
                bad.append(f"{limit + 1} sends within {times[i] - times[i - limit]!r} s")
    return bad


def test_room_opens_no_earlier_than_the_window_edge() -> None:
    # 0.01 + 2.0 rounds to 2.01, and 2.01 - 0.01 == 1.9999999999999998: a send there would be
    # the second within 2 s.
    windows = SlidingWindows([(1, 2.0)])
    windows.record(0.01)
    at = windows.earliest(0.01)
    assert at - 0.01 >= 2.0
    assert windows.earliest(at) == at  # and at that moment the window agrees there is room


@pytest.mark.parametrize("limits", [THREAD_WINDOWS, TENANT_WINDOWS, ((2, 0.3), (3, 0.7))])
@pytest.mark.parametrize("start", [0.01, 0.1, 63.11, 8191.9, 123456.789])
def test_paced_sends_fit_every_window_to_the_last_bit(
    limits: tuple[tuple[int, float], ...], start: float
) -> None:
    # Fake clock: sends go at the earliest moment, with some steps of awkward sizes in between.
    windows, now, times = SlidingWindows(limits), start, []
    steps = [0.0, 0.1, 0.0, 0.2, 0.0, 0.0, 0.3, 0.01, 0.0, 1 / 3]
    for k in range(400):
        now = windows.earliest(now)
        windows.record(now)
        times.append(now)
        now += steps[k % len(steps)]
    assert over_limit(times, limits) == []


def test_idle_means_nothing_within_the_longest_window() -> None:
    windows = SlidingWindows(((7, 1.0), (60, 30.0)))
    assert not windows.idle(0.0)  # never used: its first send may be waiting for a slot
    windows.record(10.0)
    assert not windows.idle(39.9)
    assert windows.idle(40.0)
