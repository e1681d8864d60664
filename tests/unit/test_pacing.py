"""The Teams pacing windows, driven by a fake clock."""

from __future__ import annotations

import pytest

from adapters.pacing import TENANT_WINDOWS, THREAD_WINDOWS, SlidingWindows


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
