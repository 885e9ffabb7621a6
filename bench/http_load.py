"""A thin wrapper around ``wrk``: write its Lua script, run it bounded in time, parse ``--latency``.

wrk is used rather than a Python load generator because on a 2-core machine a Python client
would eat the CPU the server needs and cap the figure at its own speed; wrk's C event loop costs
a fraction of that and reports a latency distribution. Only loopback targets are accepted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

INSTALL_HINT = "wrk is missing: apt-get install -y wrk (make bench installs it)"

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_DURATION = re.compile(r"^\s*(?P<pct>50|75|90|99)(?:\.0+)?%\s+(?P<value>[\d.]+)(?P<unit>us|ms|s|m|h)\s*$", re.M)
_RPS = re.compile(r"^Requests/sec:\s+(?P<value>[\d.]+)", re.M)
_TOTAL = re.compile(r"^\s*(?P<count>\d+) requests in (?P<secs>[\d.]+)(?P<unit>us|ms|s|m|h)", re.M)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(?P<count>\d+)", re.M)
_SOCKET = re.compile(
    r"Socket errors: connect (?P<connect>\d+), read (?P<read>\d+), write (?P<write>\d+), timeout (?P<timeout>\d+)"
)


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured; latencies in milliseconds."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(output: str) -> LoadResult:
    """Parse the text wrk prints with ``--latency``; raise if a figure we need is missing."""
    percentiles = {m["pct"]: _ms(m["value"], m["unit"]) for m in _DURATION.finditer(output)}
    rps = _RPS.search(output)
    total = _TOTAL.search(output)
    if rps is None or total is None or not {"50", "99"} <= percentiles.keys():
        raise ValueError(f"unexpected wrk output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    sockets = _SOCKET.search(output)
    return LoadResult(
        requests=int(total["count"]),
        seconds=_ms(total["secs"], total["unit"]) / 1000.0,
        rps=float(rps["value"]),
        p50_ms=percentiles["50"],
        p75_ms=percentiles.get("75", float("nan")),
        p90_ms=percentiles.get("90", float("nan")),
        p99_ms=percentiles["99"],
        non_2xx=int(non_2xx["count"]) if non_2xx else 0,
        socket_errors=sum(int(v) for v in sockets.groupdict().values()) if sockets else 0,
    )


def _lua_string(value: str) -> str:
    """A Lua string literal (JSON's escaping is a subset Lua reads the same way for our ASCII)."""
    return json.dumps(value)


def lua_script(
    *,
    method: str = "GET",
    body: str | None = None,
    headers: dict[str, str] | None = None,
    paths: list[str] | None = None,
) -> str:
    """A wrk script: fixed method, body and headers; with ``paths``, each request takes the next one.

    Each wrk thread starts at a different offset of ``paths`` so threads do not hit the same rows in
    lockstep (the server's caches would then flatter the figure).
    """
    lines = [f"wrk.method = {_lua_string(method)}"]
    if body is not None:
        lines.append(f"wrk.body = {_lua_string(body)}")
    for name, value in (headers or {}).items():
        lines.append(f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}")
    if paths:
        lines.append("local paths = {" + ",".join(_lua_string(p) for p in paths) + "}")
        lines.append(
            """
local next_offset = 0
function setup(thread)
  thread:set("offset", next_offset)
  next_offset = next_offset + 7919
end
local i = nil
function request()
  if i == nil then i = offset or 0 end
  i = i + 1
  return wrk.format(nil, paths[(i % #paths) + 1])
end
"""
        )
    return "\n".join(lines) + "\n"


def rotating_script(requests: list[tuple[str, str, str | None]], headers: dict[str, str] | None = None) -> str:
    """A wrk script whose requests cycle through ``requests`` (method, path, body): a mix of
    operations, or one operation over many rows. Each thread starts at its own offset."""
    lines = [f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}" for name, value in (headers or {}).items()]
    entries = ",".join(
        "{" + ",".join([_lua_string(method), _lua_string(path), _lua_string(body) if body else "nil"]) + "}"
        for method, path, body in requests
    )
    lines.append("local reqs = {" + entries + "}")
    lines.append(
        """
local next_offset = 0
function setup(thread)
  thread:set("offset", next_offset)
  next_offset = next_offset + 7919
end
local i = nil
function request()
  if i == nil then i = offset or 0 end
  i = i + 1
  local r = reqs[(i % #reqs) + 1]
  return wrk.format(r[1], r[2], nil, r[3])
end
"""
    )
    return "\n".join(lines) + "\n"


def check_loopback(url: str) -> None:
    """Refuse any target but this machine: the harness must never load someone else's server."""
    host = urlsplit(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"load is only generated against loopback, not {host!r}")


def run_wrk(
    url: str,
    *,
    script: str,
    connections: int = 32,
    threads: int = 2,
    duration: float = 10.0,
    timeout: float = 5.0,
) -> LoadResult:
    """One bounded wrk run against ``url`` (a loopback URL) with the given Lua script text."""
    check_loopback(url)
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError(INSTALL_HINT)
    threads = max(1, min(threads, connections))  # wrk refuses more threads than connections
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script_path = Path(tmp) / "script.lua"
        script_path.write_text(script)
        command = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            f"--timeout={max(1, round(timeout))}s",
            "--latency",
            "-s",
            str(script_path),
            url,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + timeout + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def combine(results: list[LoadResult]) -> LoadResult:
    """Several runs as one: rate over the summed time; percentiles as the request-weighted mean of
    each run's (an approximation, since wrk reports no histogram; runs are of equal length)."""
    if len(results) == 1:
        return results[0]
    total = sum(r.requests for r in results) or 1

    def weighted(name: str) -> float:
        return sum(getattr(r, name) * r.requests for r in results) / total

    seconds = sum(r.seconds for r in results)
    return LoadResult(
        requests=sum(r.requests for r in results),
        seconds=seconds,
        rps=sum(r.requests for r in results) / seconds if seconds else float("nan"),
        p50_ms=weighted("p50_ms"),
        p75_ms=weighted("p75_ms"),
        p90_ms=weighted("p90_ms"),
        p99_ms=weighted("p99_ms"),
        non_2xx=sum(r.non_2xx for r in results),
        socket_errors=sum(r.socket_errors for r in results),
    )


def load(
    url: str, *, script: str, connections: int = 32, duration: float = 10.0, warmup: float = 2.0, threads: int = 2
) -> LoadResult:
    """A warm-up run (discarded: pools fill, code paths warm) followed by the measured run."""
    if warmup > 0:
        run_wrk(url, script=script, connections=connections, threads=threads, duration=warmup)
    return run_wrk(url, script=script, connections=connections, threads=threads, duration=duration)
