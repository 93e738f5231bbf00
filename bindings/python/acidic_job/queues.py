"""The transactional outbox, queue-independent: staging, delivery, acknowledgement, drain.

``perform_transactionally(job, *args, **kwargs)`` inside a step writes a row to
``staged_acidic_jobs`` in the step's transaction (adapter ``"celery"`` or ``"rq"``, the
job's name, and a JSON payload ``{"args": [...], "kwargs": {...}}``). After the step
commits, the core hands the row to :func:`dispatch`, which sends it with the adapter
installed in this process (``acidic_job.celery.install`` / ``acidic_job.rq.install``),
passing the staged id along. When the job has succeeded, the worker acknowledges the id
(:func:`ack`), which deletes the row and, for an awaited job, counts its batch down.

If the process dies between the commit and the send, the row stays: :func:`drain`
(``python -m acidic_job drain``) delivers every row older than ``older_than`` seconds.
Delivery is therefore at least once; a job that must not run twice is itself a workflow.
"""
from __future__ import annotations

import importlib
import json
import logging
from typing import Any, Dict, Optional, Tuple

from . import _native
from .databases import Database, DatabaseLike, resolve
from .errors import EncodeError, MisuseError, UnknownJobAdapter
from .workflow import WorkflowSpec, current_step, registry

log = logging.getLogger("acidic_job")

__all__ = ["UnknownJobAdapter", "Adapter", "install_adapter", "dispatch", "describe", "perform_transactionally",
           "ack", "drain", "resume", "encode_payload"]


class Adapter:
    """A queue adapter. Subclasses implement :meth:`send` and :meth:`recognize`."""

    #: the adapter column of staged_acidic_jobs
    name = ""

    def __init__(self, db: Optional[DatabaseLike] = None) -> None:
        #: the database acknowledgements in this process go to
        self.database: Optional[Database] = resolve(db) if db is not None else None

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        raise NotImplementedError

    def continuation(self) -> str:
        """The job name that resumes a workflow after its awaited jobs."""
        raise NotImplementedError


_adapters: Dict[str, Adapter] = {}


def install_adapter(adapter: Adapter) -> Adapter:
    """Make ``adapter`` the one that sends staged jobs of its name in this process."""
    _adapters[adapter.name] = adapter
    return adapter


def installed(name: str) -> Optional[Adapter]:
    return _adapters.get(name)


def dispatch(staged_id: int, adapter: str, job_name: str, payload: str) -> bool:
    """The store's enqueue callback: push one committed staged job. False (and a log
    record) leaves the row for a later drain."""
    a = _adapters.get(adapter)
    if a is None:
        log.warning("acidic_job: staged job %d (%s %s) left for a drain: no %r adapter is "
                    "installed in this process", staged_id, adapter, job_name, adapter)
        return False
    try:
        a.send(staged_id, job_name, json.loads(payload))
    except Exception:
        log.exception("acidic_job: could not send staged job %d (%s %s); left for a drain",
                      staged_id, adapter, job_name)
        return False
    return True


def describe(job: Any) -> Tuple[str, str]:
    """(adapter, job name) of a Celery task or an RQ job; UnknownJobAdapter otherwise."""
    described = getattr(job, "__acidic_job_adapter__", None)
    if described is not None:
        return described() if callable(described) else described
    try:
        from celery.app.task import Task as CeleryTask  # type: ignore[import]
    except ImportError:  # pragma: no cover - celery not installed
        CeleryTask = None
    if CeleryTask is not None and isinstance(job, CeleryTask):
        return "celery", job.name
    raise UnknownJobAdapter(
        f"{job!r} is neither a Celery task nor an RQ job made with @acidic_job.rq.job")


def encode_payload(job: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any],
                   options: Optional[Dict[str, Any]] = None) -> str:
    doc: Dict[str, Any] = {"args": list(args), "kwargs": dict(kwargs)}
    if options:
        doc["options"] = options
    try:
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as first:
        for i, value in enumerate(args):
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise EncodeError(f"argument {i} of {describe(job)[1]} cannot be encoded: "
                                  f"{exc}") from exc
        for k, value in kwargs.items():
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise EncodeError(f"argument {k!r} of {describe(job)[1]} cannot be encoded: "
                                  f"{exc}") from exc
        raise EncodeError(f"the arguments of {describe(job)[1]} cannot be encoded: "
                          f"{first}") from first


def perform_transactionally(job: Any, *args: Any, **kwargs: Any) -> int:
    """Stage ``job(*args, **kwargs)`` in the current step's transaction; it is sent to the
    queue after the step commits (and never if it rolls back). Returns the staged id.

    Arguments are JSON-encoded (the queues serialise them as JSON too).
    """
    ctx = current_step()
    if ctx is None:
        raise MisuseError("perform_transactionally must be called inside a step of a "
                          "workflow (it stages the job in the step's transaction)",
                          _native.EMISUSE, "AJ_EMISUSE")
    adapter, name = describe(job)
    options = getattr(job, "__acidic_job_options__", None)
    payload = encode_payload(job, args, kwargs, options() if callable(options) else None)
    return ctx.run.stage(adapter, name, payload)


def continuation(adapter: str, spec: WorkflowSpec, run: _native.Run) -> Tuple[str, str]:
    """(job name, payload) of the job that resumes ``run`` after its awaited jobs."""
    a = _adapters.get(adapter)
    if a is None:
        raise UnknownJobAdapter(f"no {adapter!r} adapter is installed in this process: "
                                "awaits need it to resume the workflow")
    ctx = current_step()
    assert ctx is not None
    args_doc = ctx.args_doc
    resume_doc = {"workflow": spec.name, "module": spec.cls.__module__, "key": run.key,
                  "arguments": args_doc}
    return a.continuation(), json.dumps({"args": [resume_doc], "kwargs": {}}, sort_keys=True,
                                        separators=(",", ":"), ensure_ascii=False)


def _database_for(adapter: Optional[str], db: Optional[DatabaseLike]) -> Database:
    if db is not None:
        return resolve(db)
    a = _adapters.get(adapter or "")
    if a is None or a.database is None:
        raise MisuseError(f"no database to acknowledge {adapter or 'staged'} jobs: pass db= or "
                          f"install the adapter with a database", _native.EMISUSE, "AJ_EMISUSE")
    return a.database


def ack(staged_id: int, db: Optional[DatabaseLike] = None, *, adapter: Optional[str] = None
        ) -> bool:
    """Acknowledge (delete) a staged job that has performed. For an awaited job, the
    acknowledgement that completes the batch stages the workflow's continuation, which is
    sent after commit. Returns True in that case. A row already gone is not an error."""
    if not isinstance(staged_id, int) or isinstance(staged_id, bool):
        raise TypeError("staged_id must be an int")
    database = _database_for(adapter, db).current()
    with database.lock:
        store = database.store()
        if database.borrowed:
            with database.transaction(store):  # type: ignore[attr-defined]
                return store.ack(staged_id)
        return store.ack(staged_id)


def drain(db: DatabaseLike, older_than: float = 60.0) -> int:
    """Send every staged job committed (or last handed out) more than ``older_than``
    seconds ago and never acknowledged. Returns how many were sent."""
    if not isinstance(older_than, (int, float)) or isinstance(older_than, bool) or older_than < 0:
        raise TypeError("older_than must be a non-negative number of seconds")
    database = resolve(db).current()
    with database.lock:
        store = database.store()
        if database.borrowed:
            with database.transaction(store):  # type: ignore[attr-defined]
                return store.drain(int(older_than * 1000))
        return store.drain(int(older_than * 1000))


def resume(doc: Dict[str, Any]) -> bool:
    """Body of the continuation job: re-run the parent workflow at its next step."""
    if not isinstance(doc, dict) or not {"workflow", "key", "arguments"} <= doc.keys():
        raise TypeError(f"not an acidic_job continuation: {doc!r}")
    target = registry.get(doc["workflow"])
    if target is None and doc.get("module"):
        importlib.import_module(doc["module"])
        target = registry.get(doc["workflow"])
    if target is None:
        raise UnknownJobAdapter(f"workflow {doc['workflow']!r} is not defined in this process "
                                f"(import {doc.get('module')!r})")
    spec: WorkflowSpec = target.__acidic_workflow__
    return spec.resume(doc["key"], doc["arguments"])
