"""Pacing that holds where Teams counts, at arrival: sends in flight count in every window until
answered, then at their answer time (a fake clock with random round trips); and the line in
which senders take the shared windows."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from math import inf

import pytest

from adapters.teams.pacing import TENANT_WINDOWS, THREAD_WINDOWS, SlidingWindows, Turnstile

Windows = tuple[tuple[int, float], ...]
Send = tuple[float, float]  # (start, answer), in the order the slots were taken
FAST_THREAD: Windows = ((7, 0.05), (8, 0.1), (60, 1.5))
FAST_TENANT: Windows = ((10, 0.05),)


def could_break(sends: list[Send], windows: Windows) -> list[str]:
    """Windows that some arrival times, each anywhere in its send's [start, answer], put over
    a limit (strict, half-open windows).

    limit + 1 sends can arrive within less than W of each other exactly when, for the one whose
    slot was taken last, ``limit`` taken before it were answered less than W before its start
    (tested as ``start - answer < W``): each may then arrive in (start - W, start], and it at
    its start."""
    bad = []
    for limit, seconds in windows:
        for j, (start, _) in enumerate(sends):
            near = [answer for _, answer in sends[:j] if start - answer < seconds]
            if len(near) >= limit:
                bad.append(f"send {j} at {start!r}: {len(near)} earlier within {seconds} s")
    return bad


def simulate(
    threads: int,
    per_thread: int,
    round_trip: Callable[[], float],
    thread_windows: Windows,
    tenant_windows: Windows,
    *,
    count_at_start: bool = False,
) -> tuple[dict[int, list[Send]], list[Send]]:
    """Each thread sends one at a time (as its delivery worker does), all share the tenant.

    ``count_at_start``: the old way, a send counted at its start only (for contrast)."""
    tenant = SlidingWindows(tenant_windows)
    windows = {t: SlidingWindows(thread_windows) for t in range(threads)}
    left = dict.fromkeys(range(threads), per_thread)
    in_flight: dict[int, float] = {}  # thread -> when its send is answered
    per: dict[int, list[Send]] = {t: [] for t in range(threads)}
    every: list[Send] = []
    now = 0.0
    while any(left.values()) or in_flight:
        for t, answer in sorted(in_flight.items(), key=lambda kv: kv[1]):
            if answer <= now:
                del in_flight[t]
                if not count_at_start:
                    windows[t].settle(answer)
                    tenant.settle(answer)
        wake = [answer for answer in in_flight.values()]
        for t in range(threads):
            if t in in_flight or not left[t]:
                continue
            at = max(windows[t].earliest(now), tenant.earliest(now))
            if at > now:
                wake.append(at)
                continue
            trip = round_trip()
            if count_at_start:
                windows[t].record(now)
                tenant.record(now)
            else:
                windows[t].take()
                tenant.take()
            in_flight[t] = now + trip
            wake.append(now + trip)
            per[t].append((now, now + trip))
            every.append((now, now + trip))
            left[t] -= 1
        if any(answer <= now for answer in in_flight.values()):
            continue  # answered at once: settle, then look again at the same moment
        later = [w for w in wake if w > now]
        if not later:
            assert not any(left.values()) and not in_flight, "stuck: no send can ever go"
            break
        assert min(later) < inf, "stuck: waiting for an answer that never comes"
        now = min(later)
    return per, every


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_trip", [0.001, 0.02, 0.08])  # up to longer than a window
def test_every_arrival_pattern_is_legal(seed: int, max_trip: float) -> None:
    rng = random.Random(seed)
    per, every = simulate(6, 40, lambda: rng.uniform(0.0, max_trip), FAST_THREAD, FAST_TENANT)
    for sends in per.values():
        assert could_break(sends, FAST_THREAD) == []
    assert could_break(every, FAST_TENANT) == []
    assert sum(len(s) for s in per.values()) == 240  # nothing lost on the way


def test_counting_at_the_start_only_can_break_a_window_at_arrival() -> None:
    """The check above is not vacuous: the old way, legal at the sender, is not at arrival."""
    rng = random.Random(1)
    per, every = simulate(
        6, 40, lambda: rng.uniform(0.0, 0.02), FAST_THREAD, FAST_TENANT, count_at_start=True
    )
    assert could_break(every, FAST_TENANT) != []


def test_instant_answers_pace_as_fast_as_the_limits_allow() -> None:
    per, _ = simulate(1, 100, lambda: 0.0, THREAD_WINDOWS, TENANT_WINDOWS)
    starts = [start for start, _ in per[0]]
    assert starts[:7] == [0.0] * 7 and starts[7] == 1.0
    assert starts[-1] == 39.0  # the greedy minimum (bench/run.py's simulate)


def test_sends_in_flight_fill_a_window_until_answered() -> None:
    windows = SlidingWindows(((2, 1.0),))
    windows.take()
    windows.take()
    assert windows.earliest(5.0) == inf  # no answer yet: no moment is known to be safe
    windows.settle(5.5)
    assert windows.earliest(5.5) == 6.5  # one window after the answer, not after the start
    windows.settle(5.75)
    assert windows.earliest(6.5) == 6.5
    assert windows.idle(10_000.0)
    windows.take()
    assert not windows.idle(10_000.0)  # one in flight: not to be forgotten


def test_a_send_in_flight_longer_than_a_window_still_counts() -> None:
    windows = SlidingWindows(((1, 1.0),))
    windows.take()
    assert windows.earliest(100.0) == inf
    windows.settle(100.0)
    assert windows.earliest(100.0) == 101.0


def test_settle_without_a_send_in_flight_is_a_bug() -> None:
    with pytest.raises(ValueError, match="in flight"):
        SlidingWindows(THREAD_WINDOWS).settle(1.0)


async def test_the_shared_windows_are_taken_in_the_order_asked() -> None:
    turns, shared, order = Turnstile(time.monotonic), SlidingWindows(((1, 0.01),)), []

    async def send(name: str) -> None:
        async with turns.slot(shared):
            order.append(name)

    await asyncio.gather(*(send(name) for name in "abcde"))
    assert order == list("abcde")
    assert shared.in_flight == 0


async def test_a_sender_cancelled_in_line_holds_nobody_up() -> None:
    turns, shared = Turnstile(time.monotonic), SlidingWindows(((1, 0.01),))
    answered, done = asyncio.Event(), []

    async def send(name: str, hold: asyncio.Event | None = None) -> None:
        async with turns.slot(shared):
            if hold is not None:
                await hold.wait()  # in flight: the window stays full
            done.append(name)

    first = asyncio.create_task(send("first", answered))
    await asyncio.sleep(0)
    head = asyncio.create_task(send("head"))  # waits for an answer at the head of the line
    behind = asyncio.create_task(send("behind"))  # waits for its turn
    await asyncio.sleep(0.02)
    head.cancel()
    answered.set()
    await asyncio.gather(first, behind)
    assert done == ["first", "behind"]
    assert shared.in_flight == 0


async def test_a_sender_waiting_for_its_own_windows_is_not_in_line() -> None:
    turns, shared = Turnstile(time.monotonic), SlidingWindows(TENANT_WINDOWS)
    busy_thread = SlidingWindows(((1, 3600.0),))
    busy_thread.record(time.monotonic())  # its thread sent just now: an hour to wait
    waiting = asyncio.create_task(_send_in(turns, shared, busy_thread))
    await asyncio.sleep(0)
    await asyncio.wait_for(_send_in(turns, shared, SlidingWindows(THREAD_WINDOWS)), 5)
    assert not waiting.done()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def _send_in(turns: Turnstile, shared: SlidingWindows, own: SlidingWindows) -> None:
    async with turns.slot(shared, own):
        pass
