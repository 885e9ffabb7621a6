"""Where ``SECRET_KEY`` comes from, so that no built-in value ever signs anything real.

The key signs export download links and paging tokens, and the sandbox gateway's webhook secret
is derived from it. A constant default would let anyone who reads this repository forge a
``checkout.session.completed`` webhook or a download link, so there is none:

- ``SECRET_KEY`` set: used as given (at least :data:`MIN_LENGTH` characters, never a known
  placeholder).
- unset in development: a random key is generated once into ``<VAR_DIR>/secret-key`` (mode 0600)
  and every process on the host reads the same file, so links signed by a worker verify in the
  web process.
- unset in production (``APP_ENV=production``): refused, since hosts would disagree on a key kept
  on one disk.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

MIN_LENGTH = 32
FILE_NAME = "secret-key"
# Values that were (or look like) a shipped default: refused wherever they come from.
KNOWN_PLACEHOLDERS = frozenset({"dev-insecure-secret-change-me", "changeme", "change-me", "secret", "dev"})


class ConfigError(ValueError):
    """Settings that must not be used as given: one problem per line, each naming the setting and
    what to do. Start-up prints each as ``configuration error: <problem>`` and exits 2."""

    def __init__(self, *problems: str) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)

    def lines(self) -> list[str]:
        """What start-up prints: one line per bad setting, never a traceback."""
        return [f"configuration error: {problem}" for problem in self.problems]


def check_secret_key(value: str, *, source: str) -> str:
    """``value`` if it is long and not a placeholder, else :class:`ConfigError` naming ``source``."""
    if value.strip().lower() in KNOWN_PLACEHOLDERS:
        raise ConfigError(f"{source} is a known placeholder value; set a random secret of {MIN_LENGTH}+ characters")
    if len(value) < MIN_LENGTH:
        raise ConfigError(f"{source} is {len(value)} characters; use at least {MIN_LENGTH} random characters")
    return value


def load_or_create(var_dir: Path) -> tuple[str, bool]:
    """The development key kept under ``var_dir``; ``(key, True)`` when this call generated it.

    Created with ``O_EXCL``, so processes starting side by side agree on one key: the loser of the
    race reads the winner's file.
    """
    path = var_dir / FILE_NAME
    try:
        return check_secret_key(path.read_text().strip(), source=str(path)), False
    except FileNotFoundError:
        pass
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_or_create(var_dir)
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
    return key, True


def resolve(env: dict[str, str], var_dir: Path, *, production: bool) -> tuple[str, bool]:
    """The key to run with, and whether it was generated just now (the runner prints that once)."""
    configured = env.get("SECRET_KEY")
    if configured:
        return check_secret_key(configured, source="SECRET_KEY"), False
    if production:
        raise ConfigError(
            "SECRET_KEY is not set; production (APP_ENV=production) needs the same random key on every host"
        )
    return load_or_create(var_dir)
