"""Celery 5 integration.

Setup, once per application (in the module that creates the Celery app, so that every
worker process runs it)::

    app = Celery("shop", broker=REDIS_URL)
    acidic_job.celery.install(app, db)      # db: where staged jobs are acknowledged

* Tasks made with ``@app.task(base=acidic_job.celery.Task)`` gain
  ``task.perform_transactionally(*args, **kwargs)``; any task can be staged with
  ``acidic_job.perform_transactionally(task, *args, **kwargs)``.
* A staged task is sent after the step commits with ``app.send_task(name, args, kwargs,
  headers={"acidic_job_staged_id": id})``. When it has succeeded (Celery's
  ``task_success`` signal, in the worker), the staged row is acknowledged.
* ``@acidic_job.celery.task(app)`` on a workflow class registers a Celery task that runs
  the workflow (``Cls.task.delay(*args)``).
* Awaits: ``@acidic_job.step(awaits=[some_task])`` sends the tasks as a batch of the core;
  the last one to succeed sends the ``acidic_job.resume`` task, which continues the
  workflow at its next step.
* Recovery: a run started by a workflow's task records how to resume it. A worker killed
  in the middle of a run (Celery acknowledges tasks early: the broker forgets them) leaves
  the run locked; once its lock timeout has passed, recovery sends ``acidic_job.resume``
  for it with the run's idempotency key as the task id, and the run resumes at its
  recovery point. A failed run is retried the same way when its retry is due, until it
  has failed ``max_attempts`` times and is dead. Each worker (its main process, once it
  is ready) sends the ``acidic_job.recover`` task every ``recover_every`` seconds (60 by
  default) to the first queue it consumes; a pool process runs it like any task. Many
  workers sweeping at once is safe: the database decides. ``recover_every=None`` turns
  it off (then schedule ``acidic_job.recover`` with Celery beat, or run
  ``python -m acidic_job recover``).

Workers that fork (the default prefork pool) are fine with a URL or a connection factory:
each child opens its own connection.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Type, TypeVar

from celery import Celery
from celery import Task as _CeleryTask
from celery import current_task, signals

from . import adapters, queues
from .databases import DatabaseLike
from .workflow import recoverable

log = logging.getLogger("acidic_job")

HEADER = "acidic_job_staged_id"
RESUME_TASK = "acidic_job.resume"
RECOVER_TASK = "acidic_job.recover"

T = TypeVar("T")

__all__ = ["install", "Task", "task", "CeleryAdapter", "HEADER", "RESUME_TASK",
           "RECOVER_TASK"]


class CeleryAdapter(adapters.Adapter):
    """Sends staged jobs of adapter ``"celery"`` through one Celery app."""

    name = "celery"

    def __init__(self, app: Celery, db: Optional[DatabaseLike],
                 recover_every: Optional[float] = 60.0,
                 lock_timeout: Optional[float] = None) -> None:
        super().__init__(db, lock_timeout)
        self.app = app
        self.recover_every = recover_every
        self._stop = threading.Event()

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        options = dict(payload.get("options") or {})
        if payload.get("id"):
            options["task_id"] = payload["id"]
        self.app.send_task(job_name, args=payload.get("args", []),
                           kwargs=payload.get("kwargs", {}), headers={HEADER: staged_id},
                           **options)

    def continuation(self) -> str:
        return RESUME_TASK


def _staged_id(request: Any) -> Optional[int]:
    value = getattr(request, HEADER, None)
    if value is None:
        headers = getattr(request, "headers", None) or {}
        value = headers.get(HEADER)
    return int(value) if value is not None else None


def _on_task_success(sender: Any = None, result: Any = None, **kwargs: Any) -> None:
    if sender is None:
        return
    staged = _staged_id(sender.request)
    if staged is None:
        return
    try:
        queues.ack(staged, adapter="celery")
    except Exception:
        log.exception("acidic_job: could not acknowledge staged job %d (task %s); a drain "
                      "will send it again", staged, getattr(sender, "name", "?"))


def _recoverable_here() -> Any:
    """Runs started by the current task are resumed on the queue it came from."""
    request = getattr(current_task, "request", None)
    info = getattr(request, "delivery_info", None) or {}
    queue = info.get("routing_key")
    return recoverable("celery", **({"queue": queue} if queue else {}))


def _resume(doc: Dict[str, Any]) -> bool:
    """The ``acidic_job.resume`` task: continue a run (after its awaited tasks, or handed
    back by recovery), recoverable through Celery again."""
    with _recoverable_here():
        return queues.resume(doc)


def _recover() -> List[int]:
    """The ``acidic_job.recover`` task: one sweep of the installed database."""
    done = queues.recover(adapter="celery")
    return [done.requeued, done.dead]


def _first_queue(consumer: Any) -> Optional[str]:
    queues_ = getattr(getattr(consumer, "task_consumer", None), "queues", None) or []
    return queues_[0].name if queues_ else None


def _on_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    """In the worker's main process: send acidic_job.recover now and every
    recover_every seconds, from a daemon thread (the main process never touches the
    database, so a forking pool's children stay the only users of their connections)."""
    installed = adapters.installed("celery")
    if not isinstance(installed, CeleryAdapter) or not installed.recover_every or \
            installed.db is None:
        return
    adapter: CeleryAdapter = installed
    queue = _first_queue(sender)
    every = float(installed.recover_every)
    adapter._stop.clear()

    def sweep() -> None:
        while True:
            try:
                adapter.app.send_task(RECOVER_TASK, queue=queue)
            except Exception:
                log.exception("acidic_job: could not send %s; trying again in %g s",
                              RECOVER_TASK, every)
            if adapter._stop.wait(every):
                return

    threading.Thread(target=sweep, name="acidic_job-recover", daemon=True).start()


def _on_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    adapter = adapters.installed("celery")
    if isinstance(adapter, CeleryAdapter):
        adapter._stop.set()


def install(app: Celery, db: Optional[DatabaseLike] = None,
            recover_every: Optional[float] = 60.0,
            lock_timeout: Optional[float] = None) -> CeleryAdapter:
    """Send staged ``"celery"`` jobs through ``app``, acknowledge them in ``db`` once they
    have succeeded, register the ``acidic_job.resume`` (awaits, recovery) and
    ``acidic_job.recover`` tasks, and have each worker send ``acidic_job.recover`` every
    ``recover_every`` seconds (None: never). Recovery there judges locks by
    ``lock_timeout`` (seconds, default 90: the longest of your workflows')."""
    if not isinstance(app, Celery):
        raise TypeError(f"install expects a celery.Celery app, got {type(app).__name__}")
    if recover_every is not None and (not isinstance(recover_every, (int, float)) or
                                      isinstance(recover_every, bool) or recover_every < 0):
        raise TypeError("recover_every must be a non-negative number of seconds or None")
    adapter = CeleryAdapter(app, db, recover_every, lock_timeout)
    adapters.install_adapter(adapter)
    if RESUME_TASK not in app.tasks:
        app.task(name=RESUME_TASK, base=Task, shared=False)(_resume)
    if RECOVER_TASK not in app.tasks:
        app.task(name=RECOVER_TASK, shared=False, ignore_result=True)(_recover)
    signals.task_success.connect(_on_task_success, weak=False, dispatch_uid="acidic_job.ack")
    signals.worker_ready.connect(_on_worker_ready, weak=False,
                                 dispatch_uid="acidic_job.recover")
    signals.worker_shutdown.connect(_on_worker_shutdown, weak=False,
                                    dispatch_uid="acidic_job.recover-stop")
    return adapter


class Task(_CeleryTask):  # type: ignore[misc]
    """A Celery task base adding :meth:`perform_transactionally`."""

    abstract = True

    def perform_transactionally(self, *args: Any, **kwargs: Any) -> None:
        """Stage this task in the current step's transaction; sent after commit."""
        queues.perform_transactionally(self, *args, **kwargs)


def task(app: Celery, **options: Any) -> Callable[[Type[T]], Type[T]]:
    """Register a Celery task running a workflow class (an ``acidic_job.Workflow`` with a
    database, or a ``@acidic_job.workflow`` class, below this decorator): the class gains
    ``task`` (the Celery task, named after the workflow unless ``name=`` is given), whose
    arguments are those of ``Cls.run``."""

    def decorate(cls: Type[T]) -> Type[T]:
        spec = getattr(cls, "__acidic_workflow__", None)
        if spec is None:
            raise TypeError("@acidic_job.celery.task goes on a workflow class: an "
                            "acidic_job.Workflow with a database, or above @acidic_job.workflow")
        name = options.pop("name", spec.name)

        def run_workflow(*args: Any, **kwargs: Any) -> bool:
            with _recoverable_here():
                result: bool = getattr(cls, "run")(*args, **kwargs)
            return result

        run_workflow.__name__ = cls.__name__
        run_workflow.__qualname__ = cls.__qualname__
        run_workflow.__module__ = cls.__module__
        cls.task = app.task(name=name, base=Task, **options)(run_workflow)  # type: ignore
        return cls

    return decorate
