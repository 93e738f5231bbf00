"""Queue adapters, the bottom layer: the registry, delivery, and payload encoding.

An adapter sends staged jobs of one adapter name (``"celery"``, ``"rq"``, or your own)
to its queue. :func:`install_adapter` makes it the one that serves its name in this
process; :func:`dispatch` is the callback every store hands committed staged jobs to.
:func:`describe` tells which adapter and job name a job object belongs to, and
:func:`encode_payload` turns its arguments into the JSON document of the staged row.

This module knows nothing of databases, workflows or steps: the layers above import it,
never the reverse (``databases`` receives :func:`dispatch` as its enqueue callable).
"""
from __future__ import annotations

import json
import logging
from typing import Any, Dict, Optional, Tuple

from .codec import is_utf8
from .errors import EncodeError, UnknownJobAdapter

log = logging.getLogger("acidic_job")

__all__ = ["Adapter", "install_adapter", "installed", "dispatch", "describe",
           "encode_payload", "continuation", "resume_job"]


class Adapter:
    """A queue adapter. Subclasses set :attr:`name` and implement :meth:`send` and
    :meth:`continuation`.

    ``db`` is where the workers of this process acknowledge the jobs it sent and recover
    runs (a URL, a connection, a factory, as a workflow's ``database=`` takes), or None
    when acknowledgements name their database themselves. ``lock_timeout`` (seconds) is
    the one recovery judges locks by there: a run locked for longer is stranded (None:
    the core's default, 90 s); make it the longest of your workflows'.
    """

    #: the adapter column of staged_acidic_jobs
    name = ""

    def __init__(self, db: Any = None, lock_timeout: Optional[float] = None) -> None:
        #: the database acknowledgements and recovery in this process go to
        self.db = db
        self.lock_timeout = lock_timeout
        #: ``db`` resolved (on first use, by the layer above)
        self.database: Any = None

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        """Push one job. ``payload`` is ``{"args": [...], "kwargs": {...}}`` with, when
        given, ``"options"``: the job's own (an RQ queue) and ``"id"``, the id the queue
        should give the job (recovery passes the run's idempotency key)."""
        raise NotImplementedError

    def continuation(self) -> str:
        """The job name that resumes a workflow: after its awaited jobs, and when
        recovery hands a run back."""
        raise NotImplementedError


_adapters: Dict[str, Adapter] = {}


def install_adapter(adapter: Adapter) -> Adapter:
    """Make ``adapter`` the one that sends staged jobs of its name in this process."""
    if not isinstance(adapter, Adapter) or not adapter.name:
        raise TypeError("install_adapter expects an acidic_job.adapters.Adapter with a name")
    _adapters[adapter.name] = adapter
    return adapter


def installed(name: str) -> Optional[Adapter]:
    """The adapter serving ``name`` in this process, or None."""
    return _adapters.get(name)


def dispatch(staged_id: int, adapter: str, job_name: str, payload: str) -> bool:
    """The stores' enqueue callback: push one committed staged job. False (and a log
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


def _celery_task_class() -> Any:
    """Celery's Task class when Celery is installed (looked up once), else None."""
    global _celery_task
    if _celery_task is _UNKNOWN:
        try:
            from celery.app.task import Task as CeleryTask
        except ImportError:  # pragma: no cover - celery not installed
            CeleryTask = None
        _celery_task = CeleryTask
    return _celery_task


_UNKNOWN = object()
_celery_task: Any = _UNKNOWN


def describe(job: Any) -> Tuple[str, str]:
    """(adapter, job name) of a Celery task, an RQ job or any object carrying
    ``__acidic_job_adapter__``; UnknownJobAdapter otherwise."""
    described = getattr(job, "__acidic_job_adapter__", None)
    if described is not None:
        pair = described() if callable(described) else described
        return str(pair[0]), str(pair[1])
    celery_task = _celery_task_class()
    if celery_task is not None and isinstance(job, celery_task):
        return "celery", str(job.name)
    raise UnknownJobAdapter(
        f"{job!r} is neither a Celery task nor an RQ job made with @acidic_job.rq.job: "
        "stage one of those (or an object with __acidic_job_adapter__)")


#: one encoder for every payload (json.dumps with options builds one per call)
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                            allow_nan=False)


def _dumps(doc: Any) -> str:
    text = _ENCODER.encode(doc)
    if not is_utf8(text):
        raise ValueError("it contains a lone surrogate, which UTF-8 cannot encode")
    return text


_JSON_ONLY = "the arguments of a staged job travel as JSON: pass JSON-compatible values"


def encode_payload(job: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> str:
    """The staged row's payload: ``{"args": [...], "kwargs": {...}[, "options": {...}]}``,
    the options being what the job's ``__acidic_job_options__()`` returns (an RQ job's
    queue, say). EncodeError names the argument that JSON cannot encode."""
    described = getattr(job, "__acidic_job_options__", None)
    options = described() if callable(described) else None
    doc: Dict[str, Any] = {"args": list(args), "kwargs": dict(kwargs)}
    if options:
        doc["options"] = options
    try:
        return _dumps(doc)
    except (TypeError, ValueError) as first:
        named = [(str(i), v) for i, v in enumerate(args)] + \
                [(repr(k), v) for k, v in kwargs.items()]
        for label, value in named:
            try:
                _dumps(value)
            except (TypeError, ValueError) as exc:
                raise EncodeError(f"argument {label} of {describe(job)[1]} cannot be encoded: "
                                  f"{exc}; {_JSON_ONLY}") from exc
        raise EncodeError(f"the arguments of {describe(job)[1]} cannot be encoded: "
                          f"{first}; {_JSON_ONLY}") from first


def _installed_for(adapter: str, what: str) -> Adapter:
    a = _adapters.get(adapter)
    if a is None:
        raise UnknownJobAdapter(f"no {adapter!r} adapter is installed in this process: "
                                f"{what} need it to resume the workflow (call "
                                "acidic_job.celery.install or acidic_job.rq.install)")
    return a


def _resume_doc(workflow: str, module: str, key: str, args_doc: str) -> Dict[str, Any]:
    # The stored arguments document travels as is (not re-encoded), so the job that
    # resumes the run re-acquires the same run byte for byte.
    return {"args": [{"workflow": workflow, "module": module, "key": key,
                      "arguments": args_doc}], "kwargs": {}}


def continuation(adapter: str, workflow: str, module: str, key: str,
                 args_doc: str) -> Tuple[str, str]:
    """(job name, payload) of the job that resumes the run ``key`` of ``workflow`` after
    its awaited jobs, sent through ``adapter``."""
    a = _installed_for(adapter, "awaits")
    return a.continuation(), _dumps(_resume_doc(workflow, module, key, args_doc))


def resume_job(adapter: str, workflow: str, module: str, key: str, args_doc: str,
               options: Dict[str, Any]) -> Tuple[str, str, str]:
    """(adapter, job name, payload) of the job recovery enqueues to hand the run ``key``
    back to its queue: the adapter's continuation, with the idempotency key as the job's
    id (a Celery task id, an RQ job id) and ``options`` (an RQ queue)."""
    a = _installed_for(adapter, "recoverable runs")
    doc = _resume_doc(workflow, module, key, args_doc)
    doc["id"] = key
    if options:
        doc["options"] = dict(options)
    return adapter, a.continuation(), _dumps(doc)
