"""The bench's wrk wrapper: its output parser and its script builder (no wrk needed)."""

from __future__ import annotations

import math

import pytest

from bench.harness import Figure, percentile
from bench.http_load import LoadResult, check_loopback, combine, lua_script, parse_wrk

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000/api/orders
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    25.10ms   10.00ms 1.20s    80.00%
    Req/Sec   640.00    100.00     0.90k    70.00%
  Latency Distribution
     50%  850.00us
     75%   30.50ms
     90%   40.00ms
     99%    1.20s
  12800 requests in 10.01s, 3.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   1278.72
Transfer/sec:    306.00KB
"""


def test_parse_wrk_reads_rate_percentiles_in_ms_and_errors():
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests == 12800
    assert result.rps == pytest.approx(1278.72)
    assert result.p50_ms == pytest.approx(0.85)
    assert result.p75_ms == pytest.approx(30.5)
    assert result.p99_ms == pytest.approx(1200.0)
    assert (result.non_2xx, result.socket_errors, result.errors) == (4, 3, 7)


def test_parse_wrk_refuses_output_without_figures():
    with pytest.raises(ValueError):
        parse_wrk("unable to connect to 127.0.0.1:9 Connection refused")


def test_lua_script_sets_method_body_headers_and_paths():
    script = lua_script(method="POST", body='{"a":"b"}', headers={"Authorization": "Bearer x"}, paths=["/a", "/b"])
    assert 'wrk.method = "POST"' in script
    assert 'wrk.body = "{\\"a\\":\\"b\\"}"' in script
    assert 'wrk.headers["Authorization"] = "Bearer x"' in script
    assert 'local paths = {"/a","/b"}' in script


def test_load_only_against_loopback():
    check_loopback("http://127.0.0.1:8000/api/orders")
    with pytest.raises(ValueError):
        check_loopback("http://example.com/api/orders")


def test_ratio_and_percentile():
    assert Figure("w", "req/s", 50.0, 200.0, True).ratio == 0.25
    assert math.isnan(Figure("w", "req/s", 50.0, 0.0, True).ratio)
    assert percentile(list(range(1, 201)), 99) == 198
    assert percentile([3.0], 50) == 3.0


def test_combine_sums_counts_and_weights_percentiles_by_requests():
    first = LoadResult(100, 5.0, 20.0, 10.0, 12.0, 14.0, 30.0, 1, 0)
    second = LoadResult(300, 5.0, 60.0, 20.0, 22.0, 24.0, 50.0, 0, 2)
    both = combine([first, second])
    assert (both.requests, both.seconds, both.rps) == (400, 10.0, 40.0)
    assert both.p50_ms == pytest.approx(17.5)
    assert both.p99_ms == pytest.approx(45.0)
    assert (both.non_2xx, both.socket_errors) == (1, 2)
