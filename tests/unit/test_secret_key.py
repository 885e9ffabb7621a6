"""SECRET_KEY: never a built-in value; random per deployment in development, required in production."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from config.secret_key import ConfigError, load_or_create
from config.settings import PROJECT_ROOT, Settings
from services.payments.gateways.registry import webhook_secret

OLD_DEFAULT = "dev-insecure-secret-change-me"


def test_unset_in_development_a_random_key_is_kept_under_var(tmp_path: Path) -> None:
    first = Settings.from_env({"VAR_DIR": str(tmp_path)})
    again = Settings.from_env({"VAR_DIR": str(tmp_path)})
    other_host = Settings.from_env({"VAR_DIR": str(tmp_path / "elsewhere")})
    assert first.secret_key == again.secret_key != other_host.secret_key
    assert len(first.secret_key) >= 32 and first.secret_key != OLD_DEFAULT
    key_file = tmp_path / "secret-key"
    assert key_file.read_text().strip() == first.secret_key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_generated_once_then_read(tmp_path: Path) -> None:
    key, created = load_or_create(tmp_path)
    assert created
    assert load_or_create(tmp_path) == (key, False)


def test_settings_built_directly_get_a_key_of_their_own() -> None:
    assert Settings().secret_key != Settings().secret_key
    assert webhook_secret(Settings(), "sandbox") != webhook_secret(Settings(), "sandbox")


def test_production_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        Settings.from_env({"APP_ENV": "production", "VAR_DIR": str(tmp_path)})
    assert not (tmp_path / "secret-key").exists()


@pytest.mark.parametrize("value", [OLD_DEFAULT, "changeme", "short-key"])
def test_placeholder_or_short_keys_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({"SECRET_KEY": value, "VAR_DIR": str(tmp_path)})


def test_a_stripe_gateway_needs_its_own_webhook_secret(tmp_path: Path) -> None:
    gateways = '{"live": {"adapter": "stripe", "api_key": "sk_live_x"}}'
    with pytest.raises(ConfigError, match="needs webhook_secret"):
        Settings.from_env({"GATEWAYS_JSON": gateways, "VAR_DIR": str(tmp_path)})


def test_the_operator_commands_refuse_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "APP_ENV": "production", "VAR_DIR": str(tmp_path)}
    env.pop("SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: SECRET_KEY is not set; production (APP_ENV=production) needs the same random key "
        "on every host"
    ]
