"""The table of job kinds agrees with the Celery app, the queues and the Procfile."""

from __future__ import annotations

import re

from config.settings import PROJECT_ROOT, Settings
from services.jobs import kinds
from workers.app import create_celery_app
from workers.queues import ALL_QUEUES


def test_every_kind_is_registered_and_routed() -> None:
    app = create_celery_app(Settings(database_url="sqlite://", redis_url="redis://127.0.0.1:1/0"))
    app.loader.import_default_modules()
    for kind in (*kinds.KINDS, *(batch for batch, _ in kinds.BATCHES.values())):
        assert kind.task_name in app.tasks, f"{kind.type}: no task named {kind.task_name}"
        assert kind.queue in ALL_QUEUES, f"{kind.type}: queue {kind.queue} is not one of {ALL_QUEUES}"


def test_every_queue_of_a_kind_has_a_worker_line_in_the_procfile() -> None:
    served = set()
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        match = re.search(r"--queues (\S+)", line)
        if match:
            served.update(match.group(1).split(","))
    assert {kind.queue for kind in kinds.KINDS} <= served


def test_kinds_are_distinct() -> None:
    assert len({kind.type for kind in kinds.KINDS}) == len(kinds.KINDS)
    assert len({kind.task_name for kind in kinds.KINDS}) == len(kinds.KINDS)
    assert kinds.BY_TYPE["payment"] is kinds.PAYMENT


def test_task_names_say_their_queue() -> None:
    """A task's name starts with its queue (``payments.open_checkout`` runs on ``payments``)."""
    for kind in kinds.KINDS:
        assert kind.task_name.split(".")[0] == kind.queue, kind
