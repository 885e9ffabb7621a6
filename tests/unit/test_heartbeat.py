"""The worker heartbeat renews only jobs that have run a whole beat, in one call for all of them."""

from __future__ import annotations

from tasks.heartbeat import Heartbeat


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_short_jobs_cost_no_renewal_and_long_ones_one_statement_per_beat() -> None:
    clock, renewed = Clock(), []
    beat = Heartbeat(lambda ids: renewed.append(sorted(ids)), lease_seconds=30, clock=clock)
    beat._thread = object()  # type: ignore[assignment]  # no thread: the test beats by hand
    assert beat.every == 10
    beat.started("task_short")
    beat.started("task_long")
    clock.now = 5
    beat.finished("task_short")  # done within a beat: never renewed
    assert beat.beat() == [] and renewed == []
    clock.now = 10
    assert beat.beat() == ["task_long"] and renewed == [["task_long"]]
    clock.now = 15
    assert beat.beat() == []  # renewed 5 s ago: not due
    beat.started("task_other")
    clock.now = 25
    assert sorted(beat.beat()) == ["task_long", "task_other"] and renewed[-1] == ["task_long", "task_other"]


def test_a_failed_renewal_is_tried_again_next_beat() -> None:
    clock, calls = Clock(), []

    def renew(ids: list[str]) -> None:
        calls.append(list(ids))
        if len(calls) == 1:
            raise ConnectionError("database away")

    beat = Heartbeat(renew, lease_seconds=3, clock=clock)
    beat._thread = object()  # type: ignore[assignment]
    beat.started("task_1")
    clock.now = 1
    assert beat.beat() == []  # failed: still due
    clock.now = 1.5
    assert beat.beat() == ["task_1"] and calls == [["task_1"], ["task_1"]]
