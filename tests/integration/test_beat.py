"""Two beat processes side by side: each scheduled job fires once per interval, and the
waiting beat takes over when the one holding the RedBeat lock dies."""

from __future__ import annotations

import signal
import time

from tests.support.polling import wait_for
from tests.support.processes import start_beat, stop_process
from workers.embedded_redis import EmbeddedRedis

SENT = "Sending due task relay-queued-jobs"


def _sends(log) -> int:  # noqa: ANN001
    return log.read_text(errors="replace").count(SENT) if log.exists() else 0


def test_two_beats_fire_each_job_once_per_interval_and_fail_over(settings, tmp_path):
    redis_server = EmbeddedRedis(tmp_path / "redis")
    own = settings.with_(redis_url=redis_server.start(), relay_interval_seconds=1, beat_lock_timeout_seconds=6)
    first_log, second_log = tmp_path / "beat1.log", tmp_path / "beat2.log"
    first = start_beat(own, first_log)
    second = None
    try:
        wait_for(lambda: _sends(first_log) >= 1, timeout=30, what="the first beat to send")
        second = start_beat(own, second_log)
        started = time.monotonic()
        baseline = _sends(first_log)
        wait_for(lambda: _sends(first_log) >= baseline + 8, timeout=30, what="eight more intervals")
        elapsed = time.monotonic() - started
        fired = _sends(first_log) - baseline + _sends(second_log)
        assert _sends(second_log) == 0, "the second beat fired while the first held the lock"
        assert fired <= elapsed / own.relay_interval_seconds + 2, (fired, elapsed)

        stop_process(first, sig=signal.SIGKILL)  # no chance to release the lock
        wait_for(lambda: _sends(second_log) >= 2, timeout=40, what="the second beat to take over")
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)
        redis_server.stop()
