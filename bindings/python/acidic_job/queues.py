"""The transactional outbox, queue-independent: staging, delivery, acknowledgement, drain.

``perform_transactionally(job, *args, **kwargs)`` inside a step writes a row to
``staged_acidic_jobs`` in the step's transaction (adapter ``"celery"`` or ``"rq"``, the
job's name, and a JSON payload ``{"args": [...], "kwargs": {...}}``). After the step
commits, the core hands the row to :func:`acidic_job.adapters.dispatch`, which sends it
with the adapter installed in this process (``acidic_job.celery.install`` /
``acidic_job.rq.install``), passing the staged id along. When the job has succeeded, the worker acknowledges the id
(:func:`ack`), which deletes the row and, for an awaited job, counts its batch down.

If the process dies between the commit and the send, the row stays: :func:`drain`
(``python -m acidic_job drain``) delivers every row older than ``older_than`` seconds.
Delivery is therefore at least once; a job that must not run twice is itself a workflow.

If a worker dies in the middle of a run (its queue lost the job), or a run failed and its
queue does not retry it, :func:`recover` hands the run back to its queue under the same
idempotency key (``python -m acidic_job recover``); the Celery and RQ integrations run it
periodically in their workers.
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, NamedTuple, Optional

from . import _native
from .adapters import describe, dispatch, encode_payload, installed
from .databases import Database, DatabaseLike, milliseconds, resolve
from .errors import MisuseError, UnknownJobAdapter
from .workflow import WorkflowSpec, current_step, registry

__all__ = ["perform_transactionally", "ack", "drain", "recover", "Recovered", "resume",
           "database", "workflow_named"]


def database(db: DatabaseLike, lock_timeout: Optional[float] = None) -> Database:
    """``db`` as a :class:`~acidic_job.databases.Database` whose stores send committed
    staged jobs through the installed adapters."""
    return resolve(db, enqueue=dispatch, lock_timeout=lock_timeout)


def perform_transactionally(job: Any, *args: Any, **kwargs: Any) -> None:
    """Stage ``job(*args, **kwargs)`` in the current step's transaction; it is sent to the
    queue after the step commits (and never if it rolls back). The row is written with
    the step's last statement (no round trip of its own); its id travels with the job to
    the queue (``acidic_job_staged_id``), which acknowledges it.

    Arguments are JSON-encoded (the queues serialise them as JSON too).
    """
    ctx = current_step()
    if ctx is None:
        raise MisuseError("perform_transactionally must be called inside a step of a "
                          "workflow (it stages the job in the step's transaction)")
    adapter, name = describe(job)
    payload = encode_payload(job, args, kwargs)
    ctx.run.stage(adapter, name, payload)


def _database_for(adapter: Optional[str], db: Optional[DatabaseLike]) -> Database:
    if db is not None:
        return database(db)
    a = installed(adapter or "")
    if a is None or a.db is None:
        raise MisuseError(f"no database for the {adapter or 'queue'} adapter: pass db= or "
                          f"install the adapter with a database")
    if a.database is None:  # resolved once per adapter: one store per thread, not per ack
        a.database = database(a.db, a.lock_timeout)
    result: Database = a.database
    return result


def ack(staged_id: int, db: Optional[DatabaseLike] = None, *, adapter: Optional[str] = None
        ) -> bool:
    """Acknowledge (delete) a staged job that has performed. For an awaited job, the
    acknowledgement that completes the batch stages the workflow's continuation, which is
    sent after commit. Returns True in that case. A row already gone is not an error."""
    if not isinstance(staged_id, int) or isinstance(staged_id, bool):
        raise TypeError("staged_id must be an int")
    target = _database_for(adapter, db).current()
    with target.lock:
        completed: bool = target.store().ack(staged_id)
        return completed


def drain(db: DatabaseLike, older_than: float = 60.0) -> int:
    """Send every staged job committed (or last handed out) more than ``older_than``
    seconds ago and never acknowledged. Returns how many were sent."""
    older_than_ms = milliseconds("older_than", older_than)
    target = database(db).current()
    with target.lock:
        delivered: int = target.store().drain(older_than_ms)
        return delivered


class Recovered(NamedTuple):
    """What :func:`recover` did."""

    #: runs handed back to their queue (as staged jobs, sent after the sweep commits)
    requeued: int
    #: runs marked dead: they failed max_attempts times
    dead: int


def recover(db: Optional[DatabaseLike] = None, limit: int = 0, *,
            adapter: Optional[str] = None, lock_timeout: Optional[float] = None) -> Recovered:
    """Hand back to their queue the runs whose worker died (locked for longer than the
    lock timeout) and the failed runs whose retry is due, each under its idempotency key
    (its Celery task id or RQ job id), so it resumes at its recovery point; mark dead the
    runs that have failed ``max_attempts`` times. Safe from many processes at once: the
    database decides, and a run is handed out once per lock timeout. Only runs started
    by a queue's job (``acidic_job.celery.task``, ``acidic_job.rq.job``, awaits) know how
    to be enqueued again; the others are left alone. ``limit`` bounds the runs looked at
    (0: all). Without ``db``, the database the adapter named ``adapter`` was installed
    with (what the workers' periodic recovery uses).

    A run is stranded once its lock is older than the lock timeout of the database the
    sweep runs on: ``lock_timeout`` (seconds) for a ``db`` given as a URL or connection,
    the workflow's for a workflow's own database, the core's default (90 s) otherwise.
    A sweep judging by a shorter timeout than a run's own would hand out a run whose
    worker is still in a long step: give it the longest of your workflows'."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise TypeError("limit must be a non-negative int (0: no limit)")
    if db is not None:
        target = database(db, lock_timeout).current()
    else:
        target = _database_for(adapter, db).current()
    with target.lock:
        requeued, dead = target.store().recover(limit)
        return Recovered(requeued, dead)


def workflow_named(name: str, module: Optional[str]) -> WorkflowSpec:
    """The workflow registered under the job name ``name``, importing ``module`` (where
    it is defined) when this process has not yet."""
    target = registry.get(name)
    if target is None and module:
        importlib.import_module(module)
        target = registry.get(name)
    if target is None:
        raise UnknownJobAdapter(f"workflow {name!r} is not defined in this process (import "
                                f"{module!r})")
    spec: WorkflowSpec = target.__acidic_workflow__
    return spec


def resume(doc: Dict[str, Any]) -> bool:
    """Body of the continuation job: re-run the parent workflow at its next step."""
    if not isinstance(doc, dict) or not {"workflow", "key", "arguments"} <= doc.keys():
        raise TypeError(f"not an acidic_job continuation: {doc!r}")
    return workflow_named(doc["workflow"], doc.get("module")).resume(doc["key"],
                                                                    doc["arguments"])
