"""The app for Celery's own command line: ``celery -A workers worker|beat|inspect|flower …``.

Celery's CLI needs a module attribute holding the app; ``celery -A workers`` finds this one
(``workers.celery:app``). Importing this module builds the app from the environment (creating a
Celery app opens no connection) and sets up logging, so it is for the command line only: the
service's own code builds apps with :func:`workers.app.create_celery_app`. A bad setting exits 2
with one line per problem, as ``python -m workers`` does.

``python -m workers worker`` remains the recommended way to run a worker: it also bounds SIGTERM
(``REMAP_SIGTERM``, see ``workers/__main__.py``), which ``celery -A workers worker`` only does when
``REMAP_SIGTERM=SIGQUIT`` is in its environment.
"""

from __future__ import annotations

from config.logging import configure_logging
from config.startup import settings_or_exit
from workers.app import create_celery_app

settings = settings_or_exit()
configure_logging(settings)
app = create_celery_app(settings)
