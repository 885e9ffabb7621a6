"""Rate limits per API key: the ``limits`` library's sliding window counter, counted in Redis.

Every web process and host counts in the same Redis (``REDIS_URL``), so a key's limit is shared by
all of them. Each check is one Redis round trip: :class:`OneTripRedisStorage` sends the library's
own two Lua scripts (take one from the window, then read the window) in one pipeline, and answers
the strategy's following read of the window from what that pipeline returned, so
``SlidingWindowCounterRateLimiter.hit`` and ``get_window_stats`` (the library's arithmetic,
unchanged) cost one round trip together.

Redis being away never refuses a request: the check answers "unchecked" at once (short socket
timeouts), and for ``retry_seconds`` after a failure this process does not ask Redis at all, so an
outage adds at most one timeout per process per ``retry_seconds``, not one per request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import limits
import redis
from limits.storage import RedisStorage
from limits.strategies import SlidingWindowCounterRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

KEY_PREFIX = "orders:ratelimit"
OFF = "off"


@dataclass(frozen=True)
class Decision:
    """The outcome of one check: whether the request may proceed, and what to tell the client."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until one more request would be allowed (RateLimit-Reset, Retry-After)
    checked: bool = True  # False: Redis could not be asked, the request is let through


UNCHECKED = Decision(allowed=True, limit=0, remaining=0, reset_seconds=0, checked=False)


class OneTripRedisStorage(RedisStorage):
    """``limits``' Redis storage whose sliding-window hit also reads the window, in one round trip.

    ``acquire_sliding_window_entry`` sends the library's acquire script and its window script in one
    MULTI/EXEC (so the window read is the one this take left, whatever other processes do);
    the window it read is kept for this thread, and the ``get_sliding_window`` that the strategy's
    ``get_window_stats`` makes next for the same key is answered from it (any other read goes to
    Redis). Written against limits 5.8 (pinned): ``tests/integration/test_rate_limits.py`` checks the
    outcome against the stock storage on a real Redis.
    """

    def __init__(self, uri: str, **options: float | str | bool) -> None:
        super().__init__(uri, key_prefix=KEY_PREFIX, **options)
        self._last = threading.local()

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        keys = [self.prefixed_key(self._previous_window_key(key)), self.prefixed_key(self._current_window_key(key))]
        acquire, window = self.lua_acquire_sliding_window, self.lua_sliding_window
        for _ in range(2):
            pipe = self.get_connection().pipeline(transaction=True)  # MULTI: read what this take left
            pipe.evalsha(acquire.sha, 2, *keys, limit, expiry, amount)
            pipe.evalsha(window.sha, 2, *keys, expiry)
            acquired, read = pipe.execute(raise_on_error=False)
            if isinstance(acquired, redis.exceptions.NoScriptError):
                self._load_scripts()  # a new or flushed Redis: load and take again (nothing was counted)
                continue
            if isinstance(acquired, Exception):
                raise acquired
            if isinstance(read, redis.exceptions.NoScriptError):
                self._load_scripts()
                read = window(keys, [expiry])
            elif isinstance(read, Exception):
                raise read
            self._last.window = (key, _window(read))
            return bool(acquired)
        raise redis.exceptions.NoScriptError("the sliding window scripts could not be loaded")

    def get_sliding_window(self, key: str, expiry: int) -> tuple[int, float, int, float]:
        last = getattr(self._last, "window", None)
        if last is not None and last[0] == key:
            self._last.window = None
            return last[1]
        return super().get_sliding_window(key, expiry)

    def _load_scripts(self) -> None:
        connection = self.get_connection()
        for script in (self.lua_acquire_sliding_window, self.lua_sliding_window):
            connection.script_load(script.script)


def _window(read: list[object] | None) -> tuple[int, float, int, float]:
    """The window script's reply as ``RedisStorage.get_sliding_window`` returns it."""
    if not read:
        return 0, 0.0, 0, 0.0
    previous_count, previous_ttl, current_count, current_ttl = read
    return (
        int(previous_count or 0),  # type: ignore[call-overload]
        max(0, float(previous_ttl or 0)) / 1000,  # type: ignore[arg-type]
        int(current_count or 0),  # type: ignore[call-overload]
        max(0, float(current_ttl or 0)) / 1000,  # type: ignore[arg-type]
    )


# A process takes a key's requests from Redis several at a time while many remain: up to
# MAX_LEASE at once, never more than 1/LEASE_FRACTION of what the window has left, used within
# LEASE_SECONDS or forfeited. Near the limit it asks for each request on its own, so the count is
# exact where it matters; far from it, one round trip serves up to MAX_LEASE requests.
MAX_LEASE = 32
LEASE_FRACTION = 64
LEASE_SECONDS = 1.0
MAX_LEASES = 10_000


@dataclass
class _Lease:
    tokens: int  # taken from Redis, not used yet
    remaining: int  # what the window had left after the take
    reset_seconds: int
    expires: float  # the clock's time when unused tokens are forfeited


def _lease_size(remaining: int | None) -> int:
    if remaining is None:
        return 1
    return max(1, min(MAX_LEASE, remaining // LEASE_FRACTION))


class RateLimiter:
    """Checks API keys against their role's limit (``limits`` notation per role; ``off``: none)."""

    def __init__(
        self,
        redis_url: str,
        limit_for: Callable[[str], str],
        *,
        timeout: float = 0.25,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # No retries inside redis-py (its default retries with a backoff of up to seconds): one
        # attempt within ``timeout``, then this process stops asking for ``retry_seconds``.
        self.storage = OneTripRedisStorage(
            redis_url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=30,
        )
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self._items: dict[str, limits.RateLimitItem | None] = {}
        self._limit_for = limit_for
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._skip_until = 0.0
        self._leases: dict[str, _Lease] = {}
        self._lease_lock = threading.Lock()

    def item_for(self, role: str) -> limits.RateLimitItem | None:
        if role not in self._items:
            spec = self._limit_for(role)
            self._items[role] = None if spec.strip().lower() == OFF else limits.parse(spec)
        return self._items[role]

    def check(self, key_id: str, role: str) -> Decision | None:
        """Count one request of ``key_id``; None when its role has no limit."""
        item = self.item_for(role)
        if item is None:
            return None
        if self._clock() < self._skip_until:
            return UNCHECKED
        leased = self._from_lease(key_id, item.amount)
        if leased is not None:
            return leased
        with self._lease_lock:
            known = self._leases.get(key_id)
        size = _lease_size(known.remaining if known is not None else None)
        try:
            allowed = self.strategy.hit(item, key_id, cost=size)
            if not allowed and size > 1:  # not that many left: ask for this one request alone
                size = 1
                allowed = self.strategy.hit(item, key_id, cost=1)
            stats = self.strategy.get_window_stats(item, key_id)
        except (redis.exceptions.RedisError, OSError) as exc:
            self._skip_until = self._clock() + self.retry_seconds
            log.warning("rate limits unchecked for %ss: Redis is unreachable (%r)", self.retry_seconds, exc)
            return UNCHECKED
        reset_in = stats.reset_time - time.time()
        if reset_in <= 0 and stats.remaining < item.amount:
            # The library reads a counter whose TTL is a whole number of windows as "0 s left";
            # something is counted, so one more request comes free a whole window from now.
            reset_in = item.get_expiry()
        reset = max(1 if not allowed else 0, math.ceil(reset_in))
        unused = size - 1 if allowed else 0
        with self._lease_lock:
            if len(self._leases) > MAX_LEASES:
                self._leases.clear()  # a process serving that many keys forgets their leases at once
            self._leases[key_id] = _Lease(unused, stats.remaining, reset, self._clock() + LEASE_SECONDS)
        return Decision(allowed, item.amount, stats.remaining + unused, reset)

    def _from_lease(self, key_id: str, limit: int) -> Decision | None:
        """One request out of what this process already took for the key, while the lease lasts."""
        with self._lease_lock:
            lease = self._leases.get(key_id)
            if lease is None or lease.tokens <= 0 or self._clock() >= lease.expires:
                return None
            lease.tokens -= 1
            return Decision(True, limit, lease.remaining + lease.tokens, lease.reset_seconds)

    def close(self) -> None:
        self.storage.get_connection().close()
