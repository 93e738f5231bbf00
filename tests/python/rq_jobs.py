"""RQ jobs and workflows used by test_rq.py (and its worker processes)."""
from __future__ import annotations

import os
from typing import Any

from redis import Redis
from rq import Retry, get_current_job

import acidic_job
import acidic_job.rq
from jobs_common import block_once, performed, settings

DB, BROKER, QUEUE = settings()

#: the lock timeout of the workflows the recovery tests strand, which recovery judges by
LOCK_TIMEOUT = 2
redis = Redis.from_url(BROKER) if BROKER else None
if redis is not None:
    # the recovery tests schedule sweeps themselves (acidic_job.rq.schedule_recovery)
    acidic_job.rq.install(DB, redis, queue=QUEUE, recover_every=None,
                          lock_timeout=LOCK_TIMEOUT)


@acidic_job.rq.job
def record(label: str) -> None:
    performed(label)


@acidic_job.rq.job
def charge_card(label: str) -> None:
    performed(label)


@acidic_job.rq.job
def notify(label: str) -> None:
    performed(label)


@acidic_job.workflow(DB, name="rq_jobs.Booking")
class Booking:
    def __init__(self, label: str, fail: bool = False) -> None:
        self.label, self.fail = label, fail

    @acidic_job.step
    def book(self, tx: Any) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "book"))
        record.perform_transactionally(f"{self.label}:staged")
        if self.fail:
            raise RuntimeError("booking failed")


@acidic_job.workflow(DB, name="rq_jobs.FanOut")
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


@acidic_job.rq.job
def fan_out(label: str) -> bool:
    return FanOut.run(label)


@acidic_job.workflow(DB, name="rq_jobs.Slow", lock_timeout=0)
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


@acidic_job.rq.job
def slow(label: str) -> bool:
    return Slow.run(label)


def fail_once(label: str) -> None:
    """Raise the first time for `label` (a marker file across worker processes)."""
    marker = os.path.join(os.environ.get("AJ_JOBS_DIR", "/tmp"), f"{label}.failed")
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError(f"{label}: the first attempt fails")


@acidic_job.rq.job(f"{QUEUE}-retry", retry=Retry(max=2, interval=1))
class Flaky(acidic_job.Workflow, database=DB, name="rq_jobs.Flaky"):
    """A workflow job whose second step fails once: RQ's retry resumes it there."""

    def __init__(self, label: str) -> None:
        self.label = label

    @acidic_job.step
    def first(self, tx: acidic_job.Cursor) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "first"))

    @acidic_job.step
    def flaky(self, tx: acidic_job.Cursor) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "flaky"))
        fail_once(self.label)


@acidic_job.rq.job
@acidic_job.workflow(DB, name="rq_jobs.Decorated")
class Decorated:
    """The decorator form, with the bare @acidic_job.rq.job, staged by Stager."""

    def __init__(self, label: str) -> None:
        self.label = label

    @acidic_job.step
    def only(self, tx: Any) -> None:
        tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "only"))


class Stager(acidic_job.Workflow, database=DB, name="rq_jobs.Stager"):
    def __init__(self, label: str) -> None:
        self.label = label

    @acidic_job.step
    def stage(self) -> None:
        Decorated.job.perform_transactionally(self.label)  # type: ignore[attr-defined]


@acidic_job.rq.job(f"{QUEUE}-recover")
class Stranded(acidic_job.Workflow, database=DB, name="rq_jobs.Stranded",
               lock_timeout=LOCK_TIMEOUT):
    """Its work horse is killed in the second step; recovery resumes it there."""

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
        job = get_current_job()
        tx.execute("INSERT INTO performed (label, pid) VALUES (?, ?)",
                   (f"{self.label}:job:{job.id if job else None}", os.getpid()))


@acidic_job.rq.job
class Doomed(acidic_job.Workflow, database=DB, name="rq_jobs.Doomed", max_attempts=3,
             retry_base=0.5):
    """Fails every time: dead after three attempts."""

    def __init__(self, label: str) -> None:
        self.label = label

    @acidic_job.step
    def charge(self) -> None:
        with open(os.path.join(os.environ["AJ_JOBS_DIR"], f"{self.label}.attempts"), "a") as f:
            f.write("attempt\n")
        raise RuntimeError(f"{self.label}: the card was declined")
