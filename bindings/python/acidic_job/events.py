"""Hearing what happens: log records and step traces, fed by the core's events.

The core reports what it does (``aj_store_set_events``): a run acquired or skipped, each
step started, committed or failed, a run finished, a job staged or handed to its queue, a
drain, a recovery. Every store of this package hands those events to :func:`handle`,
which turns them into

* records on the ``acidic_job`` logger, each with structured fields in ``extra`` (below);
* calls of the step hooks added with :func:`add_step_hook`: one :class:`StepTrace` when a
  step starts and one when it ends, with the run's persisted attributes at that moment
  (a tracing library opens a span at the first and closes it at the second).

Only the events someone listens to cross from C into Python: :func:`wanted` reads the
logger's level and the hooks before each run, so a process that logs at WARNING and
traces nothing pays nothing per step.

The records (message, level, ``extra`` fields besides ``event``, ``workflow``, ``key`` and
``run_id``, which every run record has):

============== ======= =======================================================================
event          level   fields
============== ======= =======================================================================
``started``    DEBUG   ``step``, ``attempt``: a new run, at its first step
``resumed``    INFO    ``step``, ``attempt``: a run that existed, at its recovery point
``skipped``    INFO    ``status``: nothing to run (``finished``, ``awaiting``, ``dead``...)
``step_done``  DEBUG   ``step``, ``attempt``, ``duration_ms``, ``status``
``step_failed`` WARNING ``step``, ``attempt``, ``duration_ms``, ``error_code``, ``error``
``finished``   INFO    ``attempt``
``staged``     DEBUG   ``staged_id``, ``adapter``, ``job``
``enqueued``   DEBUG   ``staged_id``, ``adapter``, ``job``, ``accepted`` (a refusal's reason is
                       logged at WARNING by the adapter layer)
``drained``    INFO    ``delivered``
``recovered``  INFO    ``adapter``, ``job``, ``attempt``, ``dead`` (WARNING when dead)
============== ======= =======================================================================
"""
from __future__ import annotations

import contextvars
import json
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from . import _native

log = logging.getLogger("acidic_job")

__all__ = ["StepTrace", "add_step_hook", "remove_step_hook", "wanted", "handle", "running",
           "STATUS_NAMES"]

#: RUN_* status -> the word records use
STATUS_NAMES = {
    _native.RUN_READY: "ready", _native.RUN_AWAITING: "awaiting",
    _native.RUN_SUCCEEDED: "finished", _native.RUN_FAILED: "failed",
    _native.RUN_FINISHED_FAILED: "finished with an error", _native.RUN_DEAD: "dead",
    _native.RUN_NEW: "new",
}


@dataclass
class StepTrace:
    """What a step hook receives, once when the step starts and once when it ends."""

    #: "start" or "end"
    phase: str
    workflow: str
    key: str
    run_id: int
    step: str
    attempt: int
    #: the run's persisted attributes: as the step starts from them, then as it left them
    #: (committed), or as they were before it (failed)
    attributes: Dict[str, Any] = field(default_factory=dict)
    #: at the end: "committed" or "failed"
    outcome: Optional[str] = None
    #: at the end: seconds since the step started
    duration: Optional[float] = None
    #: at the end of a failed step: the exception the step raised (None when the core
    #: failed it: see ``error_message``)
    error: Optional[BaseException] = None
    error_message: Optional[str] = None


StepHook = Callable[[StepTrace], Any]
_hooks: List[StepHook] = []


def add_step_hook(hook: StepHook) -> StepHook:
    """Call ``hook(StepTrace)`` at the start and at the end of every step in this
    process. Returns the hook (so it can decorate a function). An exception in a hook is
    logged and changes nothing about the step."""
    if not callable(hook):
        raise TypeError("a step hook is a callable(StepTrace)")
    _hooks.append(hook)
    return hook


def remove_step_hook(hook: StepHook) -> None:
    """Stop calling ``hook``; nothing when it was not added."""
    try:
        _hooks.remove(hook)
    except ValueError:
        pass


#: The run executing in this context, set by the workflow layer around a run: its
#: ``spec`` (``.name``, ``.codec``) and the exception its failing step raised
#: (``.error``). Events of drains and recoveries have none.
running: contextvars.ContextVar[Any] = contextvars.ContextVar("acidic_job_running",
                                                              default=None)

_E = _native
_STEP_EVENTS = (1 << _E.EVENT_STEP_STARTED) | (1 << _E.EVENT_STEP_COMMITTED) | \
    (1 << _E.EVENT_STEP_FAILED)
_BY_LEVEL = [
    (logging.DEBUG, (1 << _E.EVENT_ACQUIRED) | (1 << _E.EVENT_STEP_COMMITTED) |
     (1 << _E.EVENT_STAGED) | (1 << _E.EVENT_ENQUEUED)),
    (logging.INFO, (1 << _E.EVENT_ACQUIRED) | (1 << _E.EVENT_SKIPPED) |
     (1 << _E.EVENT_FINISHED) | (1 << _E.EVENT_DRAINED) | (1 << _E.EVENT_RECOVERED)),
    (logging.WARNING, (1 << _E.EVENT_STEP_FAILED) | (1 << _E.EVENT_RECOVERED)),
]


def wanted() -> int:
    """The event types someone listens to now (bit ``1 << EVENT_*``)."""
    mask = _STEP_EVENTS if _hooks else 0
    for level, bits in _BY_LEVEL:
        if log.isEnabledFor(level):
            mask |= bits
    return mask


def _attributes(run: Any, doc: Optional[str]) -> Dict[str, Any]:
    if not doc:
        return {}
    try:
        decoded = run.spec.codec.decode(doc) if run is not None else json.loads(doc)
    except Exception:  # a trace must not fail a step; the step reports bad documents
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _trace(ev: Any, phase: str, outcome: Optional[str] = None) -> None:
    run = running.get()
    trace = StepTrace(
        phase=phase, workflow=ev.job_name or "", key=ev.key or "", run_id=ev.run_id,
        step=ev.step or "", attempt=ev.attempt, attributes=_attributes(run, ev.attributes),
        outcome=outcome, duration=ev.duration_us / 1e6 if phase == "end" else None,
        error=getattr(run, "error", None) if outcome == "failed" else None,
        error_message=ev.message if outcome == "failed" else None)
    for hook in list(_hooks):
        try:
            hook(trace)
        except Exception:  # logged, never raised into the core or the step
            log.exception("acidic_job: step hook %r failed at the %s of step %s", hook, phase,
                          trace.step)


def _run_fields(ev: Any, name: str, **fields: Any) -> Dict[str, Any]:
    fields.update(event=name, workflow=ev.job_name, key=ev.key, run_id=ev.run_id)
    return fields


def handle(ev: Any) -> None:
    """The stores' event handler: one core event (``_native.Event``)."""
    kind = ev.type
    if kind == _E.EVENT_STEP_STARTED:
        if _hooks:
            _trace(ev, "start")
        return
    if kind == _E.EVENT_STEP_COMMITTED:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("step %s of %s run %r done in %.1f ms", ev.step, ev.job_name, ev.key,
                      ev.duration_us / 1000, extra=_run_fields(
                          ev, "step_done", step=ev.step, attempt=ev.attempt,
                          duration_ms=ev.duration_us / 1000,
                          status=STATUS_NAMES.get(ev.status, str(ev.status))))
        if _hooks:
            _trace(ev, "end", "committed")
        return
    if kind == _E.EVENT_STEP_FAILED:
        if log.isEnabledFor(logging.WARNING):
            run = running.get()
            error = getattr(run, "error", None)
            text = f"{type(error).__name__}: {error}" if error is not None else ev.message
            log.warning("step %s of %s run %r failed: %s", ev.step, ev.job_name, ev.key, text,
                        extra=_run_fields(ev, "step_failed", step=ev.step, attempt=ev.attempt,
                                          duration_ms=ev.duration_us / 1000,
                                          error_code=_native.code_name(ev.code), error=text))
        if _hooks:
            _trace(ev, "end", "failed")
        return
    if kind == _E.EVENT_ACQUIRED:
        # the core does not set `resumed` yet; a later attempt is a resumption too
        if ev.resumed or ev.attempt > 1:
            log.info("resumed %s run %r at step %s (attempt %d)", ev.job_name, ev.key, ev.step,
                     ev.attempt, extra=_run_fields(ev, "resumed", step=ev.step,
                                                   attempt=ev.attempt))
        else:
            log.debug("started %s run %r at step %s", ev.job_name, ev.key, ev.step,
                      extra=_run_fields(ev, "started", step=ev.step, attempt=ev.attempt))
    elif kind == _E.EVENT_SKIPPED:
        status = STATUS_NAMES.get(ev.status, str(ev.status))
        log.info("skipped %s run %r: already %s", ev.job_name, ev.key, status,
                 extra=_run_fields(ev, "skipped", status=status))
    elif kind == _E.EVENT_FINISHED:
        log.info("finished %s run %r", ev.job_name, ev.key,
                 extra=_run_fields(ev, "finished", attempt=ev.attempt))
    elif kind == _E.EVENT_STAGED:
        log.debug("staged %s job %s (id %d) in run %d", ev.adapter, ev.staged_job,
                  ev.staged_id, ev.run_id,
                  extra={"event": "staged", "run_id": ev.run_id, "staged_id": ev.staged_id,
                         "adapter": ev.adapter, "job": ev.staged_job})
    elif kind == _E.EVENT_ENQUEUED:
        fields = {"event": "enqueued", "run_id": ev.run_id, "staged_id": ev.staged_id,
                  "adapter": ev.adapter, "job": ev.staged_job, "accepted": ev.accepted}
        log.debug("%s %s job %s (staged id %d)", "sent" if ev.accepted else "could not send",
                  ev.adapter, ev.staged_job, ev.staged_id, extra=fields)
    elif kind == _E.EVENT_DRAINED:
        log.info("drained %d staged job(s)", ev.count,
                 extra={"event": "drained", "delivered": ev.count})
    elif kind == _E.EVENT_RECOVERED:
        fields = _run_fields(ev, "recovered", adapter=ev.adapter, job=ev.staged_job,
                             attempt=ev.attempt, dead=ev.dead)
        if ev.dead:
            log.warning("%s run %r is dead after %d attempts (max_attempts): it runs again "
                        "only when an operator retries it", ev.job_name, ev.key, ev.attempt,
                        extra=fields)
        else:
            log.info("recovered %s run %r: handed back to its queue as %s %s (attempt %d "
                     "so far)", ev.job_name, ev.key, ev.adapter, ev.staged_job, ev.attempt,
                     extra=fields)
