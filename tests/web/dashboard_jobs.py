"""The Python application the dashboard tests drive: workflows run as RQ jobs on a real
Redis (the same runs as ruby_app.rb's). Imported by python_app.py (seed, work, serve)
and by the RQ work horses.

    AJ_WEB_DB     a SQLite file path or a postgresql:// URL
    AJ_WEB_REDIS  redis://...      AJ_WEB_QUEUE  the RQ queue of the workflows
    AJ_WEB_FLAG   a file whose existence fixes the failing runs ride-fail-2 .. -5

Every step writes a row to step_log in its own transaction, so the tests count which
steps ran, and how often. The awaited child jobs go to a queue of their own (QUEUE
"-parked") that only `python_app.py work --all` works: until then the batch stays open.
"""
from __future__ import annotations

import os
import signal
from typing import Any, Dict, Optional

from redis import Redis

import acidic_job
import acidic_job.rq as aj_rq

_db = os.environ["AJ_WEB_DB"]
URL = _db if _db.startswith("postgres") else "sqlite:" + _db
QUEUE = os.environ["AJ_WEB_QUEUE"]
PARKED = QUEUE + "-parked"
REDIS = Redis.from_url(os.environ["AJ_WEB_REDIS"])
LOCK_TIMEOUT = 2.0  # seconds: a killed worker's run is stranded this long after it died

aj_rq.install(URL, REDIS, QUEUE, recover_every=None, lock_timeout=LOCK_TIMEOUT)


def log_step(tx: acidic_job.Cursor, step: str) -> None:
    """One row per step run, in the step's transaction (a URL store: ? placeholders)."""
    context = acidic_job.current_step()
    assert context is not None
    tx.execute("INSERT INTO step_log (run_key, step) VALUES (?, ?)", (context.run.key, step))


@aj_rq.job(PARKED)
def child_job(label: str) -> None:
    """An awaited job (plain RQ function job)."""


@aj_rq.job(QUEUE)
class RideCreate(acidic_job.Workflow, database=URL, name="RideCreate", lock_timeout=LOCK_TIMEOUT):
    note: Optional[str] = None

    def __init__(self, rider: str, params: Dict[str, Any]) -> None:
        self.rider, self.params = rider, params

    @acidic_job.step
    def create_ride(self, tx: acidic_job.Cursor) -> None:
        log_step(tx, "create_ride")
        self.note = self.params.get("note")

    @acidic_job.step
    def charge(self, tx: acidic_job.Cursor) -> None:
        log_step(tx, "charge")
        error = self.params.get("error")
        if error and not os.path.exists(self.params.get("fixed_flag") or ""):
            raise ValueError(error)

    @acidic_job.step
    def send_receipt(self, tx: acidic_job.Cursor) -> None:
        log_step(tx, "send_receipt")
        if self.params.get("die"):
            os.kill(os.getpid(), signal.SIGKILL)  # the work horse dies mid-step


@aj_rq.job(QUEUE)
class FanOut(acidic_job.Workflow, database=URL, name="FanOut", lock_timeout=LOCK_TIMEOUT):
    def __init__(self, label: str) -> None:
        self.label = label

    @acidic_job.step(awaits=[child_job, child_job])
    def fan_out(self, tx: acidic_job.Cursor) -> Any:
        log_step(tx, "fan_out")
        return {child_job: ("a",)}

    @acidic_job.step
    def fan_in(self, tx: acidic_job.Cursor) -> None:
        log_step(tx, "fan_in")
