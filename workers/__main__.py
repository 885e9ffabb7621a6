"""``python -m workers worker|beat …``: the Celery CLI with the app built from settings."""

from __future__ import annotations

import sys

from config.logging import configure_logging
from config.settings import Settings
from workers.app import create_celery_app


def main(argv: list[str]) -> int:
    settings = Settings.from_env()
    configure_logging(settings)
    app = create_celery_app(settings)
    return int(app.start(argv=argv) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
