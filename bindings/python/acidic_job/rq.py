"""RQ integration.

Setup, in the module that defines the jobs (workers import it)::

    redis = Redis.from_url(REDIS_URL)
    acidic_job.rq.install(db, connection=redis)

    @acidic_job.rq.job(queue="default")
    def send_receipt(ride_id): ...

* ``send_receipt.perform_transactionally(ride_id)`` inside a step stages the job; after
  commit it is enqueued with ``Queue.enqueue_call(..., meta={"acidic_job_staged_id": id},
  on_success=acidic_job.rq.acknowledge)``; RQ calls ``acknowledge`` in the worker once the
  job has succeeded, which deletes the staged row.
* Calling ``send_receipt(...)`` runs the function; ``send_receipt.enqueue(...)`` enqueues it
  directly (not transactionally).
* Awaits use the core's batches; the continuation is the job ``acidic_job.rq.resume``.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Dict, Optional, Tuple

from redis import Redis
from rq import Queue

from . import adapters, queues
from .databases import DatabaseLike
from .errors import UnknownJobAdapter

log = logging.getLogger("acidic_job")

META = "acidic_job_staged_id"

__all__ = ["install", "job", "Job", "RQAdapter", "acknowledge", "resume", "META"]


class RQAdapter(adapters.Adapter):
    """Sends staged jobs of adapter ``"rq"`` to RQ queues on one Redis connection."""

    name = "rq"

    def __init__(self, db: Optional[DatabaseLike], connection: Redis,
                 queue: str = "default") -> None:
        super().__init__(db)
        self.connection = connection
        self.queue = queue

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        options = payload.get("options") or {}
        queue = Queue(options.get("queue") or self.queue, connection=self.connection)
        queue.enqueue_call(func=job_name, args=payload.get("args", []),
                           kwargs=payload.get("kwargs", {}), meta={META: staged_id},
                           on_success=acknowledge)

    def continuation(self) -> str:
        return f"{__name__}.resume"


def install(db: Optional[DatabaseLike], connection: Redis, queue: str = "default") -> RQAdapter:
    """Send staged ``"rq"`` jobs to ``queue`` on ``connection`` and acknowledge them in
    ``db`` once they have succeeded."""
    if not isinstance(connection, Redis):
        raise TypeError(f"connection must be a redis.Redis, got {type(connection).__name__}")
    if not isinstance(queue, str) or not queue:
        raise TypeError("queue must be a non-empty str")
    adapter = RQAdapter(db, connection, queue)
    adapters.install_adapter(adapter)
    return adapter


def acknowledge(job: Any, connection: Any, result: Any, *args: Any, **kwargs: Any) -> None:
    """RQ ``on_success`` callback: acknowledge the staged row of a job that succeeded."""
    staged = (job.meta or {}).get(META)
    if staged is None:
        return
    try:
        queues.ack(int(staged), adapter="rq")
    except Exception:
        log.exception("acidic_job: could not acknowledge staged job %s (%s); a drain will "
                      "send it again", staged, job.func_name)


def resume(doc: Dict[str, Any]) -> bool:
    """The continuation job of a workflow whose awaited RQ jobs have all succeeded."""
    return queues.resume(doc)


class Job:
    """An RQ job function wrapped by :func:`job`. Calling it runs the function."""

    def __init__(self, fn: Callable[..., Any], queue: Optional[str]) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.queue = queue
        self.name = f"{fn.__module__}.{fn.__qualname__}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __acidic_job_adapter__(self) -> Tuple[str, str]:
        return "rq", self.name

    def __acidic_job_options__(self) -> Optional[Dict[str, Any]]:
        return {"queue": self.queue} if self.queue else None

    def perform_transactionally(self, *args: Any, **kwargs: Any) -> int:
        """Stage this job in the current step's transaction; enqueued after commit."""
        return queues.perform_transactionally(self, *args, **kwargs)

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        """Enqueue now (not transactionally) on the installed connection."""
        adapter = adapters.installed("rq")
        if not isinstance(adapter, RQAdapter):
            raise UnknownJobAdapter("acidic_job.rq.install(...) has not been called")
        q = Queue(self.queue or adapter.queue, connection=adapter.connection)
        return q.enqueue_call(func=self.name, args=args, kwargs=kwargs)

    def __repr__(self) -> str:
        return f"<acidic_job.rq.job {self.name}>"


def job(fn: Optional[Callable[..., Any]] = None, *, queue: Optional[str] = None) -> Any:
    """Decorate a module-level function as an RQ job usable with perform_transactionally
    and awaits. ``queue``: the queue name (default: the one given to install)."""

    def wrap(f: Callable[..., Any]) -> Job:
        if not callable(f):
            raise TypeError("@acidic_job.rq.job decorates a function")
        return Job(f, queue)

    if fn is not None:
        return wrap(fn)
    return wrap
