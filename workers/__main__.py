"""``python -m workers worker|beat …``: the Celery CLI with the app built from settings.

``beat`` runs under :mod:`workers.supervise`, so an outage of Redis restarts it instead of
ending it.
"""

from __future__ import annotations

import sys

from config.logging import configure_logging
from config.settings import Settings
from workers.app import create_celery_app
from workers.supervise import is_supervised_child, supervise, supervised_child_env


def main(argv: list[str]) -> int:
    settings = Settings.from_env()
    configure_logging(settings)
    if argv[:1] == ["beat"] and not is_supervised_child():
        return supervise([sys.executable, "-m", "workers", *argv], supervised_child_env())
    app = create_celery_app(settings)
    return int(app.start(argv=argv) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
