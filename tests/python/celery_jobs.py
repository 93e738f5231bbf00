"""Celery app, tasks and workflows used by test_celery.py (and its worker processes)."""
from __future__ import annotations

import os
from typing import Any

from celery import Celery, current_task

import acidic_job
import acidic_job.celery
from jobs_common import block_once, performed, settings

DB, BROKER, QUEUE = settings()

app = Celery("celery_jobs", broker=BROKER)
app.conf.task_default_queue = QUEUE
app.conf.worker_hijack_root_logger = False
#: seconds between a worker's recovery sweeps; off unless a test asks for it
RECOVER_EVERY = float(os.environ.get("AJ_JOBS_RECOVER_EVERY") or 0) or None
#: the lock timeout of the workflows the recovery tests strand, which recovery judges by
LOCK_TIMEOUT = 2
acidic_job.celery.install(app, DB, recover_every=RECOVER_EVERY, lock_timeout=LOCK_TIMEOUT)


@app.task(base=acidic_job.celery.Task, name="celery_jobs.record")
def record(label: str) -> None:
    performed(label)


@app.task(base=acidic_job.celery.Task, name="celery_jobs.charge_card")
def charge_card(label: str) -> None:
    performed(label)


@app.task(base=acidic_job.celery.Task, name="celery_jobs.notify")
def notify(label: str) -> None:
    performed(label)


@acidic_job.celery.task(app)
@acidic_job.workflow(DB, name="celery_jobs.Booking")
class Booking:
    def __init__(self, label: str, fail: bool = False) -> None:
        self.label, self.fail = label, fail

    @acidic_job.step
    def book(self, tx: Any) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "book"))
        record.perform_transactionally(f"{self.label}:staged")
        if self.fail:
            raise RuntimeError("booking failed")


@acidic_job.celery.task(app)
@acidic_job.workflow(DB, name="celery_jobs.FanOut")
class FanOut:
    def __init__(self, label: str) -> None:
        self.label = label

    @acidic_job.step
    def prepare(self, tx: Any) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "prepare"))

    @acidic_job.step(awaits=[charge_card, notify])
    def charge(self, tx: Any) -> Any:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "charge"))
        return {charge_card: (f"{self.label}:charged",), notify: (f"{self.label}:notified",)}

    @acidic_job.step
    def finish(self, tx: Any) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "finish"))


@acidic_job.celery.task(app)
@acidic_job.workflow(DB, name="celery_jobs.Slow", lock_timeout=0)
class Slow:
    def __init__(self, label: str) -> None:
        self.label = label

    @acidic_job.step
    def first(self, tx: Any) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "first"))

    @acidic_job.step
    def blocking(self, tx: Any) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "blocking"))
        block_once(self.label)


@acidic_job.celery.task(app)
class Stranded(acidic_job.Workflow, database=DB, name="celery_jobs.Stranded",
               lock_timeout=LOCK_TIMEOUT):
    """Its worker is killed in the second step; recovery resumes it there."""

    def __init__(self, label: str) -> None:
        self.label = label

    @acidic_job.step
    def first(self, tx: acidic_job.Cursor) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "first"))

    @acidic_job.step
    def blocking(self, tx: acidic_job.Cursor) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "blocking"))
        block_once(self.label)

    @acidic_job.step
    def last(self, tx: acidic_job.Cursor) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "last"))
        # in the step's transaction: another connection would wait for this one's lock
        tx.execute("INSERT INTO performed (label, pid) VALUES (?, ?)",
                   (f"{self.label}:task:{current_task.request.id}", os.getpid()))


@acidic_job.celery.task(app)
class Doomed(acidic_job.Workflow, database=DB, name="celery_jobs.Doomed", max_attempts=3,
             retry_base=0.5):
    """Fails every time: dead after three attempts."""

    def __init__(self, label: str) -> None:
        self.label = label

    @acidic_job.step
    def charge(self) -> None:
        # counted outside the database: the step's writes roll back with it
        with open(os.path.join(os.environ["AJ_JOBS_DIR"], f"{self.label}.attempts"), "a") as f:
            f.write("attempt\n")
        raise RuntimeError(f"{self.label}: the card was declined")


if os.environ.get("AJ_JOBS_WARM"):
    # Use the store in the worker's parent before the prefork pool forks its children:
    # each child must open its own connection.
    Booking.__acidic_workflow__.database.store()  # type: ignore[attr-defined]
