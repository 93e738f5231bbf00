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
"""
from __future__ import annotations

import importlib
from typing import Any, Dict, Optional

from . import _native
from .adapters import describe, dispatch, encode_payload, installed
from .databases import Database, DatabaseLike, resolve
from .errors import MisuseError, UnknownJobAdapter
from .workflow import WorkflowSpec, current_step, registry

__all__ = ["perform_transactionally", "ack", "drain", "resume", "database", "workflow_named"]


def database(db: DatabaseLike) -> Database:
    """``db`` as a :class:`~acidic_job.databases.Database` whose stores send committed
    staged jobs through the installed adapters."""
    return resolve(db, enqueue=dispatch)


def perform_transactionally(job: Any, *args: Any, **kwargs: Any) -> int:
    """Stage ``job(*args, **kwargs)`` in the current step's transaction; it is sent to the
    queue after the step commits (and never if it rolls back). Returns the staged id.

    Arguments are JSON-encoded (the queues serialise them as JSON too).
    """
    ctx = current_step()
    if ctx is None:
        raise MisuseError("perform_transactionally must be called inside a step of a "
                          "workflow (it stages the job in the step's transaction)")
    adapter, name = describe(job)
    payload = encode_payload(job, args, kwargs)
    return ctx.run.stage(adapter, name, payload)


def _database_for(adapter: Optional[str], db: Optional[DatabaseLike]) -> Database:
    if db is not None:
        return database(db)
    a = installed(adapter or "")
    if a is None or a.db is None:
        raise MisuseError(f"no database to acknowledge {adapter or 'staged'} jobs: pass db= or "
                          f"install the adapter with a database")
    if a.database is None:  # resolved once per adapter: one store per thread, not per ack
        a.database = database(a.db)
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
        store = target.store()
        with target.transaction(store):
            return store.ack(staged_id)


def drain(db: DatabaseLike, older_than: float = 60.0) -> int:
    """Send every staged job committed (or last handed out) more than ``older_than``
    seconds ago and never acknowledged. Returns how many were sent."""
    if not isinstance(older_than, (int, float)) or isinstance(older_than, bool) or older_than < 0:
        raise TypeError("older_than must be a non-negative number of seconds")
    target = database(db).current()
    with target.lock:
        store = target.store()
        with target.transaction(store):
            return store.drain(int(older_than * 1000))


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
