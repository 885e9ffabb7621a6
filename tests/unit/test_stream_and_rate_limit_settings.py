"""The settings of issue 14's stream and rate limits: defaults, what is accepted, one line per bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.secret_key import ConfigError
from config.settings import Settings


def test_defaults_per_role_and_the_stream_bounds(tmp_path: Path) -> None:
    settings = Settings.from_env({"VAR_DIR": str(tmp_path)})
    assert settings.rate_limit_for("admin") == settings.rate_limit_for("ops") == "120000/minute"
    assert settings.rate_limit_for("customer") == "6000/minute"
    assert (settings.task_stream_max_seconds, settings.task_stream_keepalive_seconds) == (300.0, 15.0)
    assert (settings.rate_limit_timeout_seconds, settings.rate_limit_retry_seconds) == (0.25, 5.0)


def test_limits_notation_and_off_are_accepted(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"VAR_DIR": str(tmp_path), "RATE_LIMIT_CUSTOMER": "10 per second", "RATE_LIMIT_OPS": "OFF"}
    )
    assert settings.rate_limit_for("customer") == "10 per second"
    assert settings.rate_limit_for("ops") == "off"


def test_each_bad_value_is_one_line(tmp_path: Path) -> None:
    env = {
        "VAR_DIR": str(tmp_path),
        "RATE_LIMIT_ADMIN": "lots",
        "RATE_LIMIT_CUSTOMER": "100/fortnight",
        "TASK_STREAM_MAX_SECONDS": "0",
        "RATE_LIMIT_TIMEOUT_SECONDS": "soon",
    }
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    problems = raised.value.problems
    assert len(problems) == 4, problems
    assert any(p.startswith("RATE_LIMIT_ADMIN='lots' is not a rate limit") for p in problems)
    assert any(p.startswith("RATE_LIMIT_CUSTOMER=") for p in problems)
    assert any(p.startswith("TASK_STREAM_MAX_SECONDS='0' is not a number >= 1") for p in problems)
