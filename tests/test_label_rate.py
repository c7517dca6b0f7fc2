"""Requests in flight stay at the server's capacity; 429s shrink the cap (AIMD) and nothing is lost."""

from __future__ import annotations

import asyncio

import pytest

from labelloop.llm.limiter import PROBE_WINDOWS, AdaptiveLimit

from tests.helpers.llm import GOLD, backend, classify_all

pytestmark = pytest.mark.unit

TEXTS = [f"{t} (item {i})" for i in range(15) for t in GOLD]


def run_requests(limit: AdaptiveLimit, outcomes: list[bool], hold_s: float = 0.0) -> None:
    """One request per outcome, all at once; False means the server answered 'overloaded'."""

    async def one(overloaded: bool) -> None:
        async with limit.slot() as slot:
            await asyncio.sleep(hold_s)
            if overloaded:
                slot.overloaded()

    async def main() -> None:
        await asyncio.gather(*(one(not ok) for ok in outcomes))

    asyncio.run(main())


def test_a_burst_of_refusals_cuts_the_limit_once_per_round_trip():
    limit = AdaptiveLimit(10, decrease=0.5)
    run_requests(limit, [False] * 10, hold_s=0.01)  # ten refusals of requests sent before any cut
    assert limit.stats.overloads == 10 and limit.stats.decreases == 1 and limit.limit == 5
    for _ in range(5):
        run_requests(limit, [False])  # each sent after the last cut: cuts again
    assert limit.limit == 1  # never below min_limit


def test_successes_grow_the_limit_by_one_per_window_up_to_the_maximum():
    limit = AdaptiveLimit(6, decrease=0.5)
    run_requests(limit, [False])
    assert limit.limit == 3
    run_requests(limit, [True] * 3)
    assert limit.limit == 4
    run_requests(limit, [True] * 100)
    assert limit.limit == 6 and limit.stats.max_in_flight <= 6


def test_a_refused_limit_is_tried_again_only_after_many_successes():
    limit = AdaptiveLimit(20, decrease=0.9)
    run_requests(limit, [True] * 10)
    run_requests(limit, [False])  # refused at 20: 18
    assert limit.limit == 18
    run_requests(limit, [True] * 18)
    assert limit.limit == 19  # below the refused limit: one window
    run_requests(limit, [True] * 19 * (PROBE_WINDOWS - 1))
    assert limit.limit == 19  # the refused limit waits PROBE_WINDOWS windows
    run_requests(limit, [True] * 19)
    assert limit.limit == 20


def test_a_fixed_limit_never_moves():
    limit = AdaptiveLimit(4, adaptive=False)
    run_requests(limit, [False] * 8 + [True] * 8, hold_s=0.005)
    assert limit.limit == 4 and limit.stats.decreases == 0 and limit.stats.max_in_flight == 4


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="max_limit"):
        AdaptiveLimit(0)
    with pytest.raises(ValueError, match="decrease"):
        AdaptiveLimit(4, decrease=1.5)


def test_at_capacity_the_server_is_kept_full_and_never_refuses(fake_server):
    fake = fake_server(gold=GOLD, capacity=4, over_capacity="reject", latency_s=0.03)
    b = backend(fake, concurrency=4)
    results = classify_all(b, TEXTS)
    assert all(r.label == GOLD[t.rsplit(" (item", 1)[0]] for r, t in zip(results, TEXTS))
    assert fake.by_status["429"] == 0 and fake.max_in_flight == 4 and b.limiter.stats.max_in_flight == 4


def test_over_capacity_429s_shrink_the_limit_and_every_call_succeeds(fake_server):
    counts = {}
    for adaptive in (False, True):
        fake = fake_server(gold=GOLD, capacity=3, over_capacity="reject", latency_s=0.03, retry_after_s=0.02)
        b = backend(fake, concurrency=12, max_retries=40)
        b.limiter.adaptive = adaptive
        results = classify_all(b, TEXTS)
        assert all(r.label == GOLD[t.rsplit(" (item", 1)[0]] for r, t in zip(results, TEXTS))
        assert fake.by_status["200"] == len(TEXTS)
        counts[adaptive] = fake.by_status["429"]
        if adaptive:
            assert b.limiter.stats.decreases >= 1 and b.limiter.limit < 12
    assert counts[True] < counts[False] / 2, counts  # adapting wastes far fewer requests on refusals
