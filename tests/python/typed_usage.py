"""A typed program using every public name of acidic_job, for mypy --strict
(test_typing.py checks both that mypy accepts it and that it names every entry of the
modules' __all__). It is type-checked, not run: the workflows below would need a queue.
"""
from __future__ import annotations

import datetime
import sqlite3
from typing import Any, Dict, List, Optional, Tuple

from celery import Celery
from redis import Redis
from rq import Retry

import acidic_job
import acidic_job.adapters
import acidic_job.celery
import acidic_job.rq

db = sqlite3.connect("typed.db")
app = Celery("typed", broker="memory://")
celery_adapter: acidic_job.celery.CeleryAdapter = acidic_job.celery.install(
    app, "sqlite:typed.db", recover_every=30.0)
rq_adapter: acidic_job.rq.RQAdapter = acidic_job.rq.install("sqlite:typed.db", Redis(),
                                                            recover_every=None)
staged_header: str = acidic_job.celery.HEADER + acidic_job.celery.RESUME_TASK + \
    acidic_job.celery.RECOVER_TASK + acidic_job.rq.META
task_base: type = acidic_job.celery.Task
rq_job_classes: Tuple[type, type] = (acidic_job.rq.Job, acidic_job.rq.WorkflowJob)


@acidic_job.rq.job("typed", retry=Retry(max=3, interval=10))
def notify(user_id: int) -> None:
    pass


notify_job: acidic_job.rq.Job = notify


class DateCodec(acidic_job.JSONCodec):
    def __init__(self) -> None:
        super().__init__(default=self.to_json, object_hook=self.from_json)

    @staticmethod
    def to_json(value: Any) -> Any:
        return {"$date": value.isoformat()} if isinstance(value, datetime.date) else TypeError()

    @staticmethod
    def from_json(doc: Dict[str, Any]) -> Any:
        return datetime.date.fromisoformat(doc["$date"]) if "$date" in doc else doc


codec: acidic_job.Codec = DateCodec()


class Audited(acidic_job.Workflow):
    """An abstract base: no database."""

    @acidic_job.step
    def audit(self) -> None:
        context = acidic_job.current_step()
        assert context is not None and context.step == "audit"


@acidic_job.rq.job("typed")
class Signup(Audited, database=db, name="Signup", codec=codec, lock_timeout=30.0,
             busy_timeout=5.0, synchronous="normal", conflict_retries=3, max_attempts=10,
             retry_base=1.5):
    user_id_seen: Optional[int] = None
    when: Optional[datetime.date] = None

    def __init__(self, email: str) -> None:
        self.email = email

    @acidic_job.step
    def create_user(self, tx: acidic_job.Cursor) -> None:
        tx.execute("INSERT INTO users (email) VALUES (?) RETURNING id", (self.email,))
        self.user_id_seen = int(tx.fetchone()[0])
        rows: List[Any] = tx.fetchall()
        assert tx.rowcount >= len(rows)

    @acidic_job.step(awaits=[notify])
    def welcome(self) -> Dict[Any, Tuple[Any, ...]]:
        acidic_job.perform_transactionally(notify, self.user_id_seen)
        notify.perform_transactionally(self.user_id_seen)
        return {notify: (self.user_id_seen,)}

    @acidic_job.step
    def maybe_skip(self) -> Optional[acidic_job.GoTo]:
        return acidic_job.goto("done") if self.user_id_seen is None else None

    @acidic_job.step
    def finish_early(self) -> object:
        return acidic_job.FINISH

    @acidic_job.step
    def done(self) -> None:
        pass


@acidic_job.celery.task(app)
class Welcome(acidic_job.Workflow, database=db):
    @acidic_job.step
    def only(self) -> None:
        pass


@acidic_job.workflow("sqlite:typed.db", name="Legacy")
class Legacy:
    @acidic_job.step
    def only(self) -> None:
        pass


@acidic_job.job("sqlite:typed.db")
def send(tx: acidic_job.Cursor, user_id: int) -> None:
    tx.execute("SELECT ?", (user_id,))


function_job: acidic_job.FunctionJob = send


class EchoAdapter(acidic_job.adapters.Adapter):
    name = "echo"

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        print(staged_id, job_name, payload)

    def continuation(self) -> str:
        return "echo.resume"


def operate() -> None:
    succeeded: bool = Signup.run("a@example.com") and Signup.run("b@example.com", key="b")
    with acidic_job.recoverable("echo", queue="typed"):
        succeeded = succeeded and Signup.run("d@example.com")
    adapter = acidic_job.adapters.install_adapter(EchoAdapter())
    assert acidic_job.adapters.installed("echo") is adapter
    pushed: bool = acidic_job.adapters.dispatch(1, "echo", "job", '{"args": []}')
    pair: Tuple[str, str] = acidic_job.adapters.describe(notify)
    payload: str = acidic_job.adapters.encode_payload(notify, (1,), {})
    resume: Tuple[str, str] = acidic_job.adapters.continuation("echo", "Signup", "typed", "k",
                                                                "{}")
    handed_back: Tuple[str, str, str] = acidic_job.adapters.resume_job(
        "echo", "Signup", "typed", "k", "{}", {"queue": "typed"})
    completed: bool = acidic_job.ack(1, "sqlite:typed.db")
    delivered: int = acidic_job.drain("sqlite:typed.db", older_than=0.0)
    recovered: acidic_job.Recovered = acidic_job.recover("sqlite:typed.db", limit=10)
    requeued: int = recovered.requeued + recovered.dead
    sweep_id: Optional[str] = acidic_job.rq.schedule_recovery(60.0)
    swept: List[int] = acidic_job.rq.sweep(None)

    @acidic_job.add_step_hook
    def trace(step: acidic_job.StepTrace) -> None:
        print(step.phase, step.workflow, step.key, step.run_id, step.step, step.attempt,
              step.attributes, step.outcome, step.duration, step.error, step.error_message)

    acidic_job.remove_step_hook(trace)
    print(handed_back, requeued, sweep_id, swept)
    acidic_job.rq.acknowledge(None, None, None)
    resumed: bool = acidic_job.rq.resume({"workflow": "Signup", "key": "k", "arguments": "{}"})
    ran: bool = acidic_job.rq.run_workflow("Signup", "typed_usage", "c@example.com")
    cursor_type: type = acidic_job.StoreCursor
    print(succeeded, pushed, pair, payload, resume, completed, delivered, resumed, ran,
          cursor_type, acidic_job.VERSION, acidic_job.__version__, Legacy)
    errors: Tuple[type, ...] = (
        acidic_job.Error, acidic_job.InvalidArgument, acidic_job.OutOfMemory,
        acidic_job.MisuseError, acidic_job.DatabaseError, acidic_job.SerializationConflict,
        acidic_job.SerializedTransactionConflict,
        acidic_job.MismatchedIdempotencyKeyAndJobArguments, acidic_job.LockedIdempotencyKey,
        acidic_job.UnknownRecoveryPoint, acidic_job.NoDefinedSteps, acidic_job.DuplicateStep,
        acidic_job.StepFailed, acidic_job.NotFound, acidic_job.SchemaError,
        acidic_job.EncodeError, acidic_job.DecodeError, acidic_job.DeadRun,
        acidic_job.UnknownJobAdapter)
    try:
        Signup.run("c@example.com")
    except acidic_job.LockedIdempotencyKey as exc:
        code: int = exc.code
        name: str = exc.code_name
        print(code, name, errors)
    wrapped: acidic_job.celery.CeleryAdapter = celery_adapter
    print(wrapped, rq_adapter, task_base, rq_job_classes, staged_header, function_job,
          notify_job, Welcome)


def operator_tools(url: str) -> None:
    """The operator API (acidic_job.admin), typed."""
    from datetime import datetime, timedelta, timezone

    import acidic_job.admin
    with acidic_job.admin.Admin(url, lock_timeout=90) as admin:
        page: acidic_job.admin.Page = admin.list(states=["failed"], older_than=timedelta(hours=1),
                                                 since=datetime(2026, 12, 1, tzinfo=timezone.utc))
        first: acidic_job.admin.Run = page.runs[0]
        detail: acidic_job.admin.RunDetail = admin.show(first.id)
        steps: Tuple[acidic_job.admin.Step, ...] = detail.steps
        error: Optional[acidic_job.admin.ErrorInfo] = detail.error
        staged: Tuple[acidic_job.admin.Staged, ...] = detail.staged
        batch: Optional[acidic_job.admin.Batch] = detail.batch
        resume: Optional[acidic_job.admin.Resume] = detail.resume
        stats: acidic_job.admin.Stats = admin.stats()
        backlog: acidic_job.admin.StagedPage = admin.staged(limit=10)
        later: Tuple[acidic_job.admin.Staged, ...] = admin.staged(cursor=backlog.next_cursor).staged
        counts: Tuple[acidic_job.admin.StateCount, ...] = stats.states
        jobs: Tuple[acidic_job.admin.JobCount, ...] = stats.jobs
        try:
            admin.retry("ride-3")
        except acidic_job.ActionNotApplicable as exc:
            print(exc.code_name)
        admin.reset(first.id, "charge", force=True)
        admin.unlock("ride-4")
        admin.discard("ride-5")
        result: acidic_job.admin.BulkResult = admin.bulk(
            "retry", job="RideCreate", states="failed", progress=lambda done, total: None)
        deleted: int = admin.prune(timedelta(days=7))
        recovered: acidic_job.admin.Recovered = admin.recover()
        delivered: int = admin.drain()
        every: List[acidic_job.admin.Run] = list(admin.runs(states="dead"))
        bits: int = acidic_job.admin.parse_states("failed,dead")
        parsed: acidic_job.admin.ErrorInfo = acidic_job.admin.parse_error("--- x")
        doc: Any = acidic_job.admin.to_json_value(stats)
        print(steps, error, staged, batch, resume, counts, jobs, result, deleted, recovered,
              delivered, every, bits, parsed, doc, page.to_json(), acidic_job.admin.STATES,
              acidic_job.admin.ACTIONS)
