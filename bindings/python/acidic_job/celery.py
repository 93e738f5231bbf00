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

Workers that fork (the default prefork pool) are fine with a URL or a connection factory:
each child opens its own connection.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, Optional, Type, TypeVar

from celery import Celery
from celery import Task as _CeleryTask
from celery import signals

from . import adapters, queues
from .databases import DatabaseLike

log = logging.getLogger("acidic_job")

HEADER = "acidic_job_staged_id"
RESUME_TASK = "acidic_job.resume"

T = TypeVar("T")

__all__ = ["install", "Task", "task", "CeleryAdapter", "HEADER", "RESUME_TASK"]


class CeleryAdapter(adapters.Adapter):
    """Sends staged jobs of adapter ``"celery"`` through one Celery app."""

    name = "celery"

    def __init__(self, app: Celery, db: Optional[DatabaseLike]) -> None:
        super().__init__(db)
        self.app = app

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        options = dict(payload.get("options") or {})
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


def install(app: Celery, db: Optional[DatabaseLike] = None) -> CeleryAdapter:
    """Send staged ``"celery"`` jobs through ``app``, acknowledge them in ``db`` once they
    have succeeded, and register the ``acidic_job.resume`` task (awaits)."""
    if not isinstance(app, Celery):
        raise TypeError(f"install expects a celery.Celery app, got {type(app).__name__}")
    adapter = CeleryAdapter(app, db)
    adapters.install_adapter(adapter)
    if RESUME_TASK not in app.tasks:
        app.task(name=RESUME_TASK, base=Task, shared=False)(queues.resume)
    signals.task_success.connect(_on_task_success, weak=False, dispatch_uid="acidic_job.ack")
    return adapter


class Task(_CeleryTask):  # type: ignore[misc]
    """A Celery task base adding :meth:`perform_transactionally`."""

    abstract = True

    def perform_transactionally(self, *args: Any, **kwargs: Any) -> int:
        """Stage this task in the current step's transaction; sent after commit."""
        return queues.perform_transactionally(self, *args, **kwargs)


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
            result: bool = getattr(cls, "run")(*args, **kwargs)
            return result

        run_workflow.__name__ = cls.__name__
        run_workflow.__qualname__ = cls.__qualname__
        run_workflow.__module__ = cls.__module__
        cls.task = app.task(name=name, base=Task, **options)(run_workflow)  # type: ignore
        return cls

    return decorate
