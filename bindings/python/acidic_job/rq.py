"""RQ integration.

Setup, in the module that defines the jobs (workers import it)::

    redis = Redis.from_url(REDIS_URL)
    acidic_job.rq.install(db, connection=redis)

    @acidic_job.rq.job("default")                  # a function job
    def send_receipt(ride_id): ...

    @acidic_job.rq.job("default", retry=Retry(max=5, interval=[10, 60, 300]))
    class RideCreate(acidic_job.Workflow, database=db):    # a workflow job
        ...

* ``send_receipt.perform_transactionally(ride_id)`` inside a step stages the job; after
  commit it is enqueued with ``Queue.enqueue_call(..., meta={"acidic_job_staged_id": id},
  on_success=acidic_job.rq.acknowledge)``; RQ calls ``acknowledge`` in the worker once the
  job has succeeded, which deletes the staged row.
* Calling ``send_receipt(...)`` runs the function; ``send_receipt.enqueue(...)`` enqueues it
  directly (not transactionally).
* On a workflow class (as ``@acidic_job.celery.task(app)`` for Celery) the class gains
  ``job``: ``RideCreate.job.enqueue(42, "Paris")`` enqueues a run of the workflow (the
  worker calls ``RideCreate.run(42, "Paris")``), ``RideCreate.job.perform_transactionally``
  stages one, and ``awaits=[RideCreate.job]`` awaits one.
* Retries: a workflow job that fails resumes at the failed step when it runs again, so
  give it ``retry=rq.Retry(...)``. RQ re-enqueues a failed job after its interval only
  from a worker started with ``rq worker --with-scheduler``.
* Awaits use the core's batches; the continuation is the job ``acidic_job.rq.resume``.
* Recovery: a run started by a workflow job (or resumed by ``acidic_job.rq.resume``)
  records how to resume it. When its worker died in the middle of it (a SIGKILLed work
  horse), or it failed and RQ no longer retries it, recovery enqueues
  ``acidic_job.rq.resume`` for it on its queue, with the run's idempotency key as the
  job id, and the run resumes at its recovery point; a run that has failed
  ``max_attempts`` times is dead instead. The sweep is the RQ job
  ``acidic_job.rq.sweep``, scheduled every ``recover_every`` seconds (60 by default) on
  the install queue: :func:`install` schedules the next one, and each sweep schedules
  the one after it, at most one per interval whoever schedules. A sweep imports the
  module that called :func:`install` (so call it in the module that defines the jobs, as
  above). Scheduled jobs run only with ``rq worker --with-scheduler``. A scheduler killed
  with its worker holds RQ's scheduler lock for a minute, so another worker's scheduler
  may start only later. ``recover_every=None`` turns it off (then run
  ``python -m acidic_job recover`` from cron).
"""
from __future__ import annotations

import functools
import importlib
import logging
import sys
import time
from datetime import datetime, timezone
from typing import (Any, Callable, Dict, List, Optional, Protocol, Tuple, TypeVar, Union,
                    overload)

from redis import Redis
from rq import Queue, Retry, get_current_job
from rq.job import Job as RQJob

from . import adapters, queues
from .databases import DatabaseLike
from .errors import UnknownJobAdapter
from .workflow import recoverable

log = logging.getLogger("acidic_job")

META = "acidic_job_staged_id"

T = TypeVar("T", bound=type)

__all__ = ["install", "job", "Job", "WorkflowJob", "RQAdapter", "acknowledge", "resume",
           "run_workflow", "sweep", "schedule_recovery", "META"]


class RQAdapter(adapters.Adapter):
    """Sends staged jobs of adapter ``"rq"`` to RQ queues on one Redis connection."""

    name = "rq"

    def __init__(self, db: Optional[DatabaseLike], connection: Redis,
                 queue: str = "default", recover_every: Optional[float] = 60.0,
                 module: Optional[str] = None, lock_timeout: Optional[float] = None) -> None:
        super().__init__(db, lock_timeout)
        self.connection = connection
        self.queue = queue
        self.recover_every = recover_every
        #: the module that installed this adapter: a sweep imports it to install it again
        self.module = module

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        extra: Dict[str, Any] = {"meta": {META: staged_id}, "on_success": acknowledge}
        if payload.get("id"):
            extra["job_id"] = payload["id"]
        self.enqueue(job_name, payload.get("args", []), payload.get("kwargs", {}),
                     payload.get("options") or {}, **extra)

    def enqueue(self, job_name: str, args: List[Any], kwargs: Dict[str, Any],
                options: Dict[str, Any], **extra: Any) -> Any:
        """Enqueue ``job_name`` with the options a :class:`Job` stages (queue, retry, and
        for a workflow the module that defines it)."""
        queue = Queue(options.get("queue") or self.queue, connection=self.connection)
        func = job_name
        if options.get("workflow_module"):  # a workflow: the worker calls run_workflow
            func = f"{__name__}.run_workflow"
            args = [job_name, options["workflow_module"]] + list(args)
        retry = options.get("retry")
        if retry:
            extra["retry"] = Retry(max=retry["max"], interval=retry["interval"])
        return queue.enqueue_call(func=func, args=args, kwargs=kwargs, **extra)

    def continuation(self) -> str:
        return f"{__name__}.resume"


def install(db: Optional[DatabaseLike], connection: Redis, queue: str = "default",
            recover_every: Optional[float] = 60.0,
            lock_timeout: Optional[float] = None) -> RQAdapter:
    """Send staged ``"rq"`` jobs to ``queue`` on ``connection``, acknowledge them in ``db``
    once they have succeeded, and schedule the recovery sweep every ``recover_every``
    seconds (None: never; see the module's documentation), which judges locks by
    ``lock_timeout`` (seconds, default 90: the longest of your workflows')."""
    if not isinstance(connection, Redis):
        raise TypeError(f"connection must be a redis.Redis, got {type(connection).__name__}")
    if not isinstance(queue, str) or not queue:
        raise TypeError("queue must be a non-empty str")
    if recover_every is not None and (not isinstance(recover_every, (int, float)) or
                                      isinstance(recover_every, bool) or recover_every <= 0):
        raise TypeError("recover_every must be a positive number of seconds or None")
    caller = sys._getframe(1).f_globals.get("__name__")
    adapter = RQAdapter(db, connection, queue, recover_every,
                        caller if caller not in (None, "__main__") else None, lock_timeout)
    adapters.install_adapter(adapter)
    if recover_every and db is not None:
        schedule_recovery(recover_every)
    return adapter


_SWEEP_ID = "acidic_job.rq.sweep"


def schedule_recovery(every: float) -> Optional[str]:
    """Schedule the next recovery sweep on the installed connection and queue, at the
    next multiple of ``every`` seconds, unless that one is scheduled already (its job id
    names the slot, so processes racing here schedule it once). Returns its job id, or
    None when Redis could not be reached (logged; the next install or sweep tries
    again)."""
    adapter = adapters.installed("rq")
    if not isinstance(adapter, RQAdapter):
        raise UnknownJobAdapter("acidic_job.rq.install(...) has not been called")
    slot = int(time.time() // every) + 1
    job_id = f"{_SWEEP_ID}.{slot}"
    try:
        if RQJob.exists(job_id, connection=adapter.connection):
            return job_id
        queue = Queue(adapter.queue, connection=adapter.connection)
        queue.enqueue_at(datetime.fromtimestamp(slot * every, timezone.utc), sweep, every,
                         adapter.module, job_id=job_id, result_ttl=max(60, int(every) * 2),
                         description="acidic_job recovery sweep")
    except Exception:
        log.exception("acidic_job: could not schedule the recovery sweep %s", job_id)
        return None
    return job_id


def sweep(every: Optional[float] = None, module: Optional[str] = None) -> List[int]:
    """The recovery job: hand stranded and due runs back to their queues (see
    :func:`acidic_job.recover`), then schedule the next sweep. ``module`` is the one that
    called :func:`install`: a work horse imports it first when nothing installed the
    adapter in this process yet."""
    if adapters.installed("rq") is None and module:
        importlib.import_module(module)
    try:
        done = queues.recover(adapter="rq")
        return [done.requeued, done.dead]
    finally:
        if every:
            schedule_recovery(every)


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


def _recoverable_here() -> Any:
    """Runs started by this RQ job are resumed on this job's queue."""
    current = get_current_job()
    origin = getattr(current, "origin", None)
    return recoverable("rq", **({"queue": origin} if origin else {}))


def resume(doc: Dict[str, Any]) -> bool:
    """The job that continues a workflow run: after its awaited RQ jobs have all
    succeeded, or when recovery hands the run back."""
    with _recoverable_here():
        return queues.resume(doc)


def run_workflow(workflow: str, module: str, *args: Any, **kwargs: Any) -> bool:
    """The job a worker runs for a workflow job: ``Cls.run(*args, **kwargs)``. A run that
    fails raises, so RQ's retry runs it again; it then resumes at the failed step."""
    key = kwargs.pop("key", None)
    with _recoverable_here():
        return queues.workflow_named(workflow, module).run(args, kwargs, key)


def _retry_options(retry: Optional[Retry]) -> Optional[Dict[str, Any]]:
    if retry is None:
        return None
    if not isinstance(retry, Retry):
        raise TypeError(f"retry must be an rq.Retry, got {type(retry).__name__}")
    return {"max": retry.max, "interval": list(retry.intervals)}


class Job:
    """An RQ job function wrapped by :func:`job`. Calling it runs the function."""

    def __init__(self, fn: Callable[..., Any], queue: Optional[str],
                 retry: Optional[Retry] = None) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.queue = queue
        self.retry = _retry_options(retry)
        self.name = f"{fn.__module__}.{fn.__qualname__}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __acidic_job_adapter__(self) -> Tuple[str, str]:
        return "rq", self.name

    def __acidic_job_options__(self) -> Optional[Dict[str, Any]]:
        options: Dict[str, Any] = {}
        if self.queue:
            options["queue"] = self.queue
        if self.retry:
            options["retry"] = self.retry
        return options or None

    def perform_transactionally(self, *args: Any, **kwargs: Any) -> None:
        """Stage this job in the current step's transaction; enqueued after commit."""
        queues.perform_transactionally(self, *args, **kwargs)

    def enqueue(self, *args: Any, **kwargs: Any) -> Any:
        """Enqueue now (not transactionally) on the installed connection."""
        adapter = adapters.installed("rq")
        if not isinstance(adapter, RQAdapter):
            raise UnknownJobAdapter("acidic_job.rq.install(...) has not been called")
        return adapter.enqueue(self.name, list(args), kwargs,
                               self.__acidic_job_options__() or {})

    def __repr__(self) -> str:
        return f"<acidic_job.rq.job {self.name}>"


class WorkflowJob(Job):
    """The RQ job of a workflow class (``Cls.job``): running it runs the workflow, under
    the workflow's job name, so that its stored runs and awaits are the workflow's."""

    def __init__(self, cls: type, queue: Optional[str], retry: Optional[Retry]) -> None:
        run: Callable[..., bool] = getattr(cls, "run")
        super().__init__(run, queue, retry)
        self.name = cls.__acidic_workflow__.name  # type: ignore[attr-defined]
        self.workflow_module = cls.__module__

    def __acidic_job_options__(self) -> Optional[Dict[str, Any]]:
        options = super().__acidic_job_options__() or {}
        options["workflow_module"] = self.workflow_module
        return options

    def __repr__(self) -> str:
        return f"<acidic_job.rq.job workflow {self.name}>"


class JobDecorator(Protocol):
    """What ``@acidic_job.rq.job(...)`` returns: on a class, the class (gaining ``job``);
    on a function, its :class:`Job`."""

    @overload
    def __call__(self, target: T) -> T: ...  # type: ignore[misc]  # a class first

    @overload
    def __call__(self, target: Callable[..., Any]) -> Job: ...


@overload
def job(target: T) -> T: ...  # type: ignore[misc]  # a class is callable too: it goes first


@overload
def job(target: Callable[..., Any]) -> Job: ...


@overload
def job(target: Optional[str] = None, *, queue: Optional[str] = None,
        retry: Optional[Retry] = None) -> JobDecorator: ...


def job(target: Union[None, str, Callable[..., Any]] = None, *, queue: Optional[str] = None,
        retry: Optional[Retry] = None) -> Any:
    """``@acidic_job.rq.job``, ``@acidic_job.rq.job("queue")`` or
    ``@acidic_job.rq.job(queue=..., retry=rq.Retry(...))``.

    On a module-level function: an RQ job usable with perform_transactionally and
    awaits. On a workflow class (above ``@acidic_job.workflow``, or on an
    ``acidic_job.Workflow``): the class gains ``job``, the :class:`WorkflowJob` running
    it. ``queue``: the queue name (default: the one given to install); ``retry``: how
    RQ retries a failed job (needs ``rq worker --with-scheduler``).
    """
    if isinstance(target, str):
        if queue is not None:
            raise TypeError("give the queue once: @acidic_job.rq.job('name') or queue='name'")
        queue, target = target, None
    if queue is not None and (not isinstance(queue, str) or not queue):
        raise TypeError("queue must be a non-empty str")

    def wrap(f: Any) -> Any:
        if isinstance(f, type):
            if not hasattr(f, "__acidic_workflow__"):
                raise TypeError("@acidic_job.rq.job on a class goes above @acidic_job.workflow "
                                "(or on an acidic_job.Workflow with a database)")
            setattr(f, "job", WorkflowJob(f, queue, retry))
            return f
        if not callable(f):
            raise TypeError("@acidic_job.rq.job decorates a function or a workflow class")
        return Job(f, queue, retry)

    if target is not None:
        return wrap(target)
    return wrap
