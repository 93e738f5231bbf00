"""Operator operations: see every run, read it, and act on it without racing a worker.

:class:`Admin` is a thin layer over the core's ``aj_admin_*`` functions (decision 013),
the same ones the Ruby gem, the ``acidic-job`` command and the dashboard use, so each
action behaves, and refuses, the same way everywhere::

    from datetime import timedelta
    from acidic_job.admin import Admin

    with Admin("postgresql://.../shop", lock_timeout=90) as admin:
        for run in admin.list(states=["failed", "stranded"], older_than=timedelta(hours=1)).runs:
            print(run.key, run.state, run.error_message)
        admin.retry("ride-42")                       # by key, or by id: admin.retry(17)
        admin.reset("ride-43", "charge")             # run again from the step "charge"
        admin.bulk("retry", job="RideCreate", states=["failed"])
        admin.prune(finished_before=timedelta(days=7))

States are names (``"running"``, ``"stranded"``, ``"failed"``, ``"dead"``, ``"awaiting"``,
``"queued"``, ``"succeeded"``, ``"discarded"``, and ``"finished"`` for the last two),
derived from the row in SQL by the core. Whether a lock is live depends on the lock
timeout: give :class:`Admin` the one your workers use.

Actions take the run's row as a worker does; a run whose lock is live is refused with
:class:`~acidic_job.LockedIdempotencyKey` unless ``force=True`` (the worker's next step
then misses its claim and writes nothing). An action that does not apply to the run as
it is (retrying a finished run, unlocking an unlocked one) raises
:class:`~acidic_job.ActionNotApplicable`; nothing is changed then.

Retry and reset hand the run back to its queue the way recovery does: the run's resume
job (recorded when a queue's job started it) is staged in the action's transaction and
sent after commit through the adapter installed in this process
(``acidic_job.celery.install``, ``acidic_job.rq.install``). Where none is installed (a
console, the ``acidic-job`` command without ``--import``), the job stays staged until a
drain of the application (its workers, or ``acidic-job drain --import yourapp``)
sends it. A run started without a queue (``Cls.run()`` in a script) has no resume job:
``retry(..., enqueue=False)`` clears it for the application to run again itself.

Results are frozen dataclasses; times are aware UTC datetimes. ``to_json()`` gives the
JSON form of the dashboard's API (ISO 8601 UTC times with microseconds).
"""
from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple,
                    Union)

from . import _native
from .databases import Database, DatabaseLike, milliseconds
from .errors import (ActionNotApplicable, InvalidArgument, LockedIdempotencyKey, NotFound,
                     UnknownRecoveryPoint)
from .queues import Recovered, database as queue_database, drain as queue_drain, \
    recover as queue_recover

__all__ = ["Admin", "Run", "RunDetail", "Step", "ErrorInfo", "Staged", "Batch", "Resume",
           "Page", "StagedPage", "Stats", "StateCount", "JobCount", "BulkResult", "Recovered",
           "STATES", "ACTIONS", "parse_states", "parse_error", "to_json_value"]

#: every state a run can be in, in the core's order
STATES: Tuple[str, ...] = ("running", "stranded", "failed", "dead", "awaiting", "queued",
                           "succeeded", "discarded")
#: what :meth:`Admin.bulk` can do
ACTIONS: Tuple[str, ...] = ("retry", "reset", "unlock", "discard")

#: (key or id) of a run: a str is its idempotency key, an int its id in acidic_job_keys
RunRef = Union[str, int]
#: progress callback of bulk actions and prune: (done, total), after each transaction
Progress = Callable[[int, int], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# --- values ----------------------------------------------------------------------------

def _time(us: Optional[int]) -> Optional[datetime]:
    return None if us is None else _EPOCH + timedelta(microseconds=us)


def _micros(when: datetime) -> int:
    if when.tzinfo is None:  # the core keeps UTC; a naive time is read as UTC too
        when = when.replace(tzinfo=timezone.utc)
    return (when - _EPOCH) // timedelta(microseconds=1)


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_json_value(value: Any) -> Any:
    """``value`` (a result of this module, or lists and dicts of them) as plain JSON
    values: dataclasses as dicts, datetimes as ISO 8601 UTC strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return _iso(value)
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json_value(v) for k, v in value.items()}
    return value


class _Result:
    def to_json(self) -> Dict[str, Any]:
        """The dashboard API's JSON object for this result."""
        doc: Dict[str, Any] = to_json_value(self)
        return doc


@dataclasses.dataclass(frozen=True)
class Run(_Result):
    """One run, as a list shows it."""

    id: int
    key: str
    job_name: Optional[str]
    #: one of :data:`STATES`
    state: str
    #: the step it resumes at, or "FINISHED"
    recovery_point: Optional[str]
    #: acquisitions so far (0 for rows older than acidic_job 0.9)
    attempts: int
    locked_at: Optional[datetime]
    #: "host:pid" of the lock's holder, when known
    locked_by: Optional[str]
    error_class: Optional[str]
    #: the error's message on one line (at most 300 bytes)
    error_message: Optional[str]
    updated_at: Optional[datetime]
    created_at: Optional[datetime]
    last_run_at: Optional[datetime]
    #: when recovery looks at it next
    recover_at: Optional[datetime]
    dead_at: Optional[datetime]
    awaiting_batch_id: Optional[int]

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "Run":
        return cls(**{k: _time(v) if k in _RUN_TIMES else v for k, v in d.items()})


_RUN_TIMES = frozenset({"locked_at", "updated_at", "created_at", "last_run_at", "recover_at",
                        "dead_at"})


@dataclasses.dataclass(frozen=True)
class Step(_Result):
    """A step of a run's recorded workflow, by its position relative to the recovery
    point: "done", "current" or "pending"."""

    name: str
    state: str
    #: the jobs the step awaits
    awaits: Tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ErrorInfo(_Result):
    """A stored error, read as text (never instantiating anything)."""

    #: "yaml" (acidic_job 0.7.0, Ruby), "json" or "text"
    format: str
    class_name: Optional[str]
    #: the whole message (may span lines)
    message: Optional[str]
    #: one line: "Class: message"
    summary: str
    #: the first lines of the backtrace (at most 10)
    backtrace: Tuple[str, ...] = ()

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "ErrorInfo":
        return cls(d["format"], d["class_name"], d["message"], d["summary"],
                   tuple(d["backtrace"]))


@dataclasses.dataclass(frozen=True)
class Staged(_Result):
    """A staged job not acknowledged yet (a row of staged_acidic_jobs)."""

    id: int
    adapter: Optional[str]
    job_name: Optional[str]
    #: the raw payload document
    payload: Optional[str]
    #: the run that staged it (None: staged before acidic_job 0.9)
    run_id: Optional[int]
    #: the batch it belongs to (an awaited job)
    batch_id: Optional[int]
    created_at: Optional[datetime]
    #: last handed to the queue; None: never
    delivered_at: Optional[datetime]

    @classmethod
    def _from(cls, d: Optional[Dict[str, Any]]) -> Optional["Staged"]:
        if d is None:
            return None
        return cls(**{k: _time(v) if k in ("created_at", "delivered_at") else v
                      for k, v in d.items()})


@dataclasses.dataclass(frozen=True)
class Batch(_Result):
    """An open batch of awaited jobs."""

    id: int
    run_id: int
    #: the step that staged it
    step: Optional[str]
    #: jobs not acknowledged yet
    remaining: int
    continuation_adapter: Optional[str]
    continuation_job_name: Optional[str]
    created_at: Optional[datetime]
    updated_at: Optional[datetime]

    @classmethod
    def _from(cls, d: Optional[Dict[str, Any]]) -> Optional["Batch"]:
        if d is None:
            return None
        return cls(**{k: _time(v) if k in ("created_at", "updated_at") else v
                      for k, v in d.items()})


@dataclasses.dataclass(frozen=True)
class Resume(_Result):
    """How retry and recovery enqueue a run: a staged job of this adapter and name."""

    adapter: str
    job_name: Optional[str]
    payload: Optional[str]


def _format_of(doc: Optional[str]) -> Optional[str]:
    if doc is None:
        return None
    if doc.lstrip().startswith("---"):
        return "yaml"
    try:
        json.loads(doc)
    except ValueError:
        return "text"
    return "json"


@dataclasses.dataclass(frozen=True)
class RunDetail(_Result):
    """One run in full (:meth:`Admin.show`). Documents are raw text as stored; YAML is
    never loaded."""

    run: Run
    job_args: Optional[str]
    attributes: Optional[str]
    #: "json", "yaml" or "text" (None without attributes)
    attributes_format: Optional[str]
    #: the recorded workflow's steps, with which are done, current and pending
    steps: Tuple[Step, ...]
    error: Optional[ErrorInfo]
    #: its staged jobs, in id order (at most 1,000)
    staged: Tuple[Staged, ...]
    #: the open batch it awaits
    batch: Optional[Batch]
    resume: Optional[Resume]

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "RunDetail":
        attributes = d["attributes"]
        resume = d["resume"]
        return cls(
            run=Run._from(d["run"]), job_args=d["job_args"], attributes=attributes,
            attributes_format=_format_of(attributes),
            steps=tuple(Step(s["name"], s["state"], tuple(s["awaits"])) for s in d["steps"]),
            error=None if d["error"] is None else ErrorInfo._from(d["error"]),
            staged=tuple(s for s in (Staged._from(x) for x in d["staged"]) if s is not None),
            batch=Batch._from(d["batch"]),
            resume=None if resume is None else Resume(**resume))

    def attributes_pretty(self) -> Optional[str]:
        """The attributes for reading: JSON indented, anything else as stored."""
        if self.attributes is None or self.attributes_format != "json":
            return self.attributes
        return json.dumps(json.loads(self.attributes), indent=2, ensure_ascii=False,
                          sort_keys=True)


@dataclasses.dataclass(frozen=True)
class Page(_Result):
    """A page of :meth:`Admin.list`; pass ``next_cursor`` as ``cursor`` for the next one
    (None: this is the last page)."""

    runs: Tuple[Run, ...]
    next_cursor: Optional[int]


@dataclasses.dataclass(frozen=True)
class StateCount(_Result):
    state: str
    count: int


@dataclasses.dataclass(frozen=True)
class JobCount(_Result):
    job_name: Optional[str]
    state: str
    count: int


@dataclasses.dataclass(frozen=True)
class Stats(_Result):
    """Counts by state and by job, the oldest stranded run, the staged backlog and its
    oldest row, and the open batches."""

    total: int
    states: Tuple[StateCount, ...]
    jobs: Tuple[JobCount, ...]
    oldest_stranded: Optional[Run]
    staged_backlog: int
    oldest_staged: Optional[Staged]
    open_batches: int
    oldest_batch: Optional[Batch]

    @classmethod
    def _from(cls, d: Dict[str, Any]) -> "Stats":
        stranded = d["oldest_stranded"]
        return cls(total=d["total"],
                   states=tuple(StateCount(state, n) for _, state, n in d["states"]),
                   jobs=tuple(JobCount(job, state, n) for job, state, n in d["jobs"]),
                   oldest_stranded=None if stranded is None else Run._from(stranded),
                   staged_backlog=d["staged_backlog"],
                   oldest_staged=Staged._from(d["oldest_staged"]),
                   open_batches=d["open_batches"], oldest_batch=Batch._from(d["oldest_batch"]))

    def count(self, state: str) -> int:
        """Runs in ``state`` (0 when none)."""
        return sum(c.count for c in self.states if c.state == state)


@dataclasses.dataclass(frozen=True)
class StagedPage(_Result):
    """A page of the staged backlog (:meth:`Admin.staged`), oldest first; pass
    ``next_cursor`` as ``cursor`` for the next one (None: this is the last page)."""

    staged: Tuple[Staged, ...]
    next_cursor: Optional[int]


@dataclasses.dataclass(frozen=True)
class BulkResult(_Result):
    """What a bulk action did: runs changed, and runs it passed over (refused, or held
    by another transaction)."""

    changed: int
    skipped: int


# --- arguments ---------------------------------------------------------------------------

def parse_states(states: Union[None, str, Iterable[str]]) -> int:
    """The core's state bits for state names (a list, or one string of names separated
    by commas); 0 for None or empty (every state). InvalidArgument names the states."""
    if states is None:
        return 0
    names = states.split(",") if isinstance(states, str) else list(states)
    bits = 0
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"a state is a name such as 'failed', got {name!r}")
        if name.strip():
            bits |= _native.admin_state_parse(name.strip())
    return bits


def parse_error(document: Union[str, bytes]) -> ErrorInfo:
    """Read an error document (0.7.0's YAML, acidic_job's JSON, or text) without loading
    it: class, message, a one-line summary and the first backtrace lines."""
    return ErrorInfo._from(_native.admin_error_parse(document))


def _filter(states: Union[None, str, Iterable[str]], job: Optional[str],
            key_prefix: Optional[str], older_than: Union[None, timedelta, float],
            since: Optional[datetime], batch_size: Optional[int]) -> Dict[str, Any]:
    f: Dict[str, Any] = {"states": parse_states(states), "job_name": job,
                         "key_prefix": key_prefix}
    if older_than is not None:
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        ms = milliseconds("older_than", seconds)
        f["updated_before_us"] = _micros(datetime.now(timezone.utc)) - ms * 1000
    if since is not None:
        if not isinstance(since, datetime):
            raise TypeError(f"since must be a datetime, got {since!r}")
        f["updated_since_us"] = _micros(since)
    if batch_size is not None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 0:
            raise TypeError(f"limit must be a non-negative int, got {batch_size!r}")
        f["limit"] = batch_size
    return f


def _ref(run: RunRef) -> Tuple[Optional[str], int]:
    if isinstance(run, bool) or not isinstance(run, (str, int)):
        raise TypeError(f"a run is named by its key (str) or its id (int), got {run!r}")
    if isinstance(run, int):
        if run <= 0:
            raise InvalidArgument(f"a run id is positive, got {run}")
        return None, run
    return run, 0


def _flags(force: bool, enqueue: bool = True) -> int:
    return (_native.ADMIN_FORCE if force else 0) | (0 if enqueue else _native.ADMIN_NO_ENQUEUE)


# --- the operations -----------------------------------------------------------------------

class Admin:
    """Operator operations on one database: a URL (``"sqlite:app.db"``,
    ``"postgresql://..."``), a connection (sqlite3, psycopg, psycopg2) or a factory,
    as a workflow's ``database=`` takes.

    ``lock_timeout`` (seconds) must be the workers': a run locked more recently counts
    as running (refused unless forced), one locked longer as stranded. None: the core's
    default, 90 s. Use one Admin per thread, as a store."""

    def __init__(self, database: DatabaseLike, *, lock_timeout: Optional[float] = None) -> None:
        self._database: Database = queue_database(database, lock_timeout)
        self._lock_timeout = lock_timeout

    def __enter__(self) -> "Admin":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection this Admin opened (a URL's); a borrowed one stays open."""
        close = getattr(self._database, "close", None)
        if close is not None and not self._database.borrowed:
            close()

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        target = self._database.current()
        with target.lock:
            return fn(target.store(), *args, **kwargs)

    @property
    def driver(self) -> str:
        """"sqlite", "postgres" or "host": the kind of database (the dashboard shows it)."""
        driver: str = self._call(lambda store: store.driver)
        return driver

    # -- reading -----------------------------------------------------------------
    def list(self, *, states: Union[None, str, Iterable[str]] = None, job: Optional[str] = None,
             key_prefix: Optional[str] = None, older_than: Union[None, timedelta, float] = None,
             since: Optional[datetime] = None, cursor: Optional[int] = None,
             limit: Optional[int] = None, order: str = "desc") -> Page:
        """A page of runs: of these ``states``, of the job ``job``, whose key starts
        with ``key_prefix``, last updated more than ``older_than`` ago (a timedelta or
        seconds) and at or after ``since``. ``order`` "desc" lists the newest (highest
        id) first, "asc" the oldest. ``limit`` runs per page (default 50, at most
        1,000); the next page starts after ``cursor`` (a page's ``next_cursor``)."""
        if order not in ("desc", "asc"):
            raise InvalidArgument(f"order must be 'desc' or 'asc', got {order!r}")
        f = _filter(states, job, key_prefix, older_than, since, limit)
        if cursor is not None:
            if not isinstance(cursor, int) or isinstance(cursor, bool) or cursor < 0:
                raise TypeError(f"cursor must be a run id (a non-negative int), got {cursor!r}")
            f["after_id"] = cursor
        f["descending"] = order == "desc"
        runs, next_cursor = self._call(_native.admin_list, **f)
        return Page(tuple(Run._from(r) for r in runs), next_cursor)

    def runs(self, **filters: Any) -> Iterator[Run]:
        """Every run :meth:`list` selects with ``filters``, page after page."""
        cursor = filters.pop("cursor", None)
        while True:
            page = self.list(cursor=cursor, **filters)
            yield from page.runs
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def show(self, run: RunRef) -> RunDetail:
        """One run in full, by key or id. A key that names several runs (acidic_job
        0.7.0 keyed runs by key, job and arguments) is InvalidArgument listing their ids:
        pass the id then."""
        key, run_id = _ref(run)
        return RunDetail._from(self._call(_native.admin_show, key, run_id))

    def get(self, run: RunRef) -> Run:
        """The row of one run as :meth:`list` shows it."""
        return self.show(run).run

    def stats(self) -> Stats:
        """Counts by state and job, the oldest stranded run, the staged backlog, the
        open batches. Each figure scans its table: an operator's occasional call."""
        return Stats._from(self._call(_native.admin_stats))

    def staged(self, *, cursor: Optional[int] = None, limit: Optional[int] = None) -> StagedPage:
        """A page of the staged jobs not acknowledged yet, oldest first: ``limit`` per
        page (default 50, at most 1,000), after ``cursor`` (a page's ``next_cursor``)."""
        for name, value in (("cursor", cursor), ("limit", limit)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                      or value < 0):
                raise TypeError(f"{name} must be a non-negative int, got {value!r}")
        listed, next_cursor = self._call(_native.admin_staged_list, cursor or 0, limit or 0)
        return StagedPage(tuple(s for s in (Staged._from(x) for x in listed) if s is not None),
                          next_cursor)

    # -- acting on one run -------------------------------------------------------
    def _after(self, key: Optional[str], run_id: int) -> Run:
        return self.get(run_id if run_id else key)  # type: ignore[arg-type]

    def retry(self, run: RunRef, *, force: bool = False, enqueue: bool = True) -> Run:
        """Retry a failed, dead, stranded or queued run at its recovery point: its error,
        dead mark and attempts are cleared, its lock released, and its resume job staged
        (sent after commit by an installed adapter, else by a drain). ``enqueue=False``
        stages nothing, for a run the application enqueues itself (one without a resume
        job). Returns the run as it is now."""
        key, run_id = _ref(run)
        self._call(_native.admin_retry, key, run_id, _flags(force, enqueue))
        return self._after(key, run_id)

    def reset(self, run: RunRef, step: str, *, force: bool = False,
              enqueue: bool = True) -> Run:
        """Move the run's recovery point to ``step`` (back or forward) and enqueue it as
        :meth:`retry` does: the steps from there on run again, with their writes. A
        finished run runs again; an awaiting run stops awaiting. UnknownRecoveryPoint
        when ``step`` is not a step of the run's recorded workflow."""
        key, run_id = _ref(run)
        if not isinstance(step, str):
            raise TypeError(f"step must be a step name (str), got {step!r}")
        self._call(_native.admin_reset, key, run_id, step, _flags(force, enqueue))
        return self._after(key, run_id)

    def unlock(self, run: RunRef, *, force: bool = False) -> Run:
        """Release the lock of a stranded run (its worker died). Nothing is enqueued:
        the run is due for recovery at once (:meth:`recover`), or retry it."""
        key, run_id = _ref(run)
        self._call(_native.admin_unlock, key, run_id, _flags(force))
        return self._after(key, run_id)

    def discard(self, run: RunRef, *, force: bool = False) -> Run:
        """Finish the run as failed so that it never runs again, keeping its row (and its
        error; one is recorded when it had none)."""
        key, run_id = _ref(run)
        self._call(_native.admin_discard, key, run_id, _flags(force))
        return self._after(key, run_id)

    # -- acting on many ----------------------------------------------------------
    def bulk(self, action: str, *, ids: Optional[Sequence[int]] = None,
             states: Union[None, str, Iterable[str]] = None, job: Optional[str] = None,
             key_prefix: Optional[str] = None, older_than: Union[None, timedelta, float] = None,
             since: Optional[datetime] = None, step: Optional[str] = None,
             force: bool = False, batch_size: Optional[int] = None,
             progress: Optional[Progress] = None) -> BulkResult:
        """Apply ``action`` ("retry", "reset" to ``step``, "unlock", "discard") to the
        runs ``ids``, or to every run the filter selects (``states`` defaults to failed
        and dead runs, stranded ones for "unlock"), in id order, in transactions of
        ``batch_size`` runs (default 100, at most 1,000). Runs the action refuses, and
        rows another transaction holds, are skipped and counted. ``progress(done,
        total)`` is called after each transaction; an exception it raises (or Ctrl-C)
        stops the walk there and is raised: what was committed stays."""
        if action not in ACTIONS:
            raise InvalidArgument(f"unknown action {action!r}: one of {', '.join(ACTIONS)}")
        if (action == "reset") != (step is not None):
            raise InvalidArgument("reset needs step=, and only reset takes one")
        if ids is not None:
            if any(v is not None for v in (states, job, key_prefix, older_than, since)):
                raise InvalidArgument("pass ids or a filter, not both")
            return self._bulk_ids(action, list(ids), step, force, progress)
        f = _filter(states, job, key_prefix, older_than, since, batch_size)
        code = getattr(_native, "ADMIN_" + action.upper())
        changed, skipped = self._call(_native.admin_bulk, code, step, _flags(force), progress,
                                      **f)
        return BulkResult(changed, skipped)

    def _bulk_ids(self, action: str, ids: List[int], step: Optional[str], force: bool,
                  progress: Optional[Progress]) -> BulkResult:
        for run_id in ids:
            if isinstance(run_id, bool) or not isinstance(run_id, int) or run_id <= 0:
                raise TypeError(f"ids are run ids (positive ints), got {run_id!r}")
        changed = skipped = 0
        call = {"retry": _native.admin_retry, "unlock": _native.admin_unlock,
                "discard": _native.admin_discard}.get(action)
        for n, run_id in enumerate(ids, 1):
            try:
                if call is None:
                    self._call(_native.admin_reset, None, run_id, step, _flags(force))
                else:
                    self._call(call, None, run_id, _flags(force))
                changed += 1
            except (ActionNotApplicable, LockedIdempotencyKey, NotFound, UnknownRecoveryPoint):
                skipped += 1  # refused, as the filter form skips it
            if progress is not None:
                progress(n, len(ids))
        return BulkResult(changed, skipped)

    def prune(self, finished_before: Union[timedelta, datetime, float], *,
              states: Union[None, str, Iterable[str]] = None, job: Optional[str] = None,
              key_prefix: Optional[str] = None, batch_size: Optional[int] = None,
              progress: Optional[Progress] = None) -> int:
        """Delete finished runs (their rows) last updated before ``finished_before`` (a
        time, or an age: a timedelta or seconds), in transactions of ``batch_size`` rows.
        ``states`` may narrow it to "succeeded" or "discarded". Staged jobs are kept.
        Returns how many were deleted; ``progress`` as in :meth:`bulk`."""
        if isinstance(finished_before, datetime):
            before = _micros(finished_before)
        else:
            seconds = (finished_before.total_seconds() if isinstance(finished_before, timedelta)
                       else finished_before)
            before = (_micros(datetime.now(timezone.utc))
                      - milliseconds("finished_before", seconds) * 1000)
        f = _filter(states, job, key_prefix, None, None, batch_size)
        f["updated_before_us"] = before
        deleted: int = self._call(_native.admin_prune, progress, **f)
        return deleted

    # -- the outbox and recovery -------------------------------------------------
    def drain(self, older_than: float = 60.0) -> int:
        """Send the staged jobs committed (or last sent) more than ``older_than`` seconds
        ago and never acknowledged, through the adapters installed in this process (rows
        of adapters not installed here stay). Returns how many were sent."""
        return queue_drain(self._database, older_than)

    def recover(self, limit: int = 0) -> Recovered:
        """Hand stranded runs and failed runs whose retry is due back to their queue
        (:func:`acidic_job.recover`), judging locks by this Admin's lock timeout."""
        return queue_recover(self._database, limit, lock_timeout=self._lock_timeout)
