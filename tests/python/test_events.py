"""Hearing what happens: the records of the ``acidic_job`` logger and the step hooks,
both fed by the core's events (aj_store_set_events)."""
from __future__ import annotations

import logging
import time
from typing import Any, Dict, List

import pytest

import acidic_job
import acidic_job.adapters
import acidic_job.events
from recording import RecordingAdapter


class NotifyJob:
    __acidic_job_adapter__ = (RecordingAdapter.name, "notify")


@pytest.fixture
def recorder() -> Any:
    previous = acidic_job.adapters.installed(RecordingAdapter.name)
    adapter = acidic_job.adapters.install_adapter(RecordingAdapter())
    yield adapter
    if previous is not None:
        acidic_job.adapters.install_adapter(previous)


@pytest.fixture
def records(caplog: Any) -> Any:
    caplog.set_level(logging.DEBUG, logger="acidic_job")

    def of(event: str) -> List[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "acidic_job" and
                getattr(r, "event", None) == event]
    of.clear = caplog.clear  # type: ignore[attr-defined]
    return of


def booking(db: Any, ph: str, fail: List[str]) -> Any:
    class Booking(acidic_job.Workflow, database=db, name="Booking"):
        ride: int = 0

        def __init__(self, user: int) -> None:
            self.user = user

        @acidic_job.step
        def reserve(self, tx: acidic_job.Cursor) -> None:
            tx.execute(f"INSERT INTO log (step) VALUES ({ph})", ("reserve",))
            self.ride = 7

        @acidic_job.step
        def charge(self, tx: acidic_job.Cursor) -> None:
            if "charge" in fail:
                raise RuntimeError("card declined")
            self.ride += 1

        @acidic_job.step
        def notify(self) -> None:
            acidic_job.perform_transactionally(NotifyJob, self.ride)

    return Booking


def fields(record: logging.LogRecord, *names: str) -> Dict[str, Any]:
    return {name: getattr(record, name) for name in names}


def test_a_run_is_heard_step_by_step(dbenv: Any, records: Any, recorder: Any) -> None:
    dbenv.table("log", "step TEXT")
    fail = ["charge"]
    Booking = booking(dbenv.db, dbenv.ph, fail)
    with pytest.raises(RuntimeError):
        Booking.run(1, key="k1")
    (started,) = records("started")
    assert started.levelno == logging.DEBUG
    assert fields(started, "workflow", "key", "step", "attempt") == {
        "workflow": "Booking", "key": "k1", "step": "reserve", "attempt": 1}
    (done,) = records("step_done")
    assert fields(done, "step", "status", "attempt") == {"step": "reserve", "status": "ready",
                                                          "attempt": 1}
    assert done.duration_ms >= 0 and done.run_id > 0
    (failed,) = records("step_failed")
    assert failed.levelno == logging.WARNING
    assert fields(failed, "workflow", "key", "step", "error_code") == {
        "workflow": "Booking", "key": "k1", "step": "charge", "error_code": "AJ_ESTEP"}
    assert failed.error == "RuntimeError: card declined" and "card declined" in failed.message

    records.clear()
    fail.clear()
    assert Booking.run(1, key="k1") is True
    (resumed,) = records("resumed")
    assert resumed.levelno == logging.INFO
    assert fields(resumed, "key", "step", "attempt") == {"key": "k1", "step": "charge",
                                                         "attempt": 2}
    assert [r.step for r in records("step_done")] == ["charge", "notify"]
    assert records("step_done")[-1].status == "finished"
    (staged,) = records("staged")
    assert fields(staged, "adapter", "job") == {"adapter": "recorder", "job": "notify"}
    assert staged.staged_id > 0
    (enqueued,) = records("enqueued")
    assert enqueued.staged_id == staged.staged_id and enqueued.accepted is True
    (finished,) = records("finished")
    assert finished.levelno == logging.INFO and fields(finished, "key", "workflow") == {
        "key": "k1", "workflow": "Booking"}

    records.clear()
    assert Booking.run(1, key="k1") is True
    (skipped,) = records("skipped")
    assert skipped.levelno == logging.INFO and skipped.status == "finished"
    assert records("step_done") == []


def test_drains_and_recoveries_are_heard(sqlite_env: Any, records: Any, recorder: Any) -> None:
    env = sqlite_env

    class Doomed(acidic_job.Workflow, database=env.db, name="Doomed", max_attempts=2,
                 retry_base=0.05):
        @acidic_job.step
        def charge(self) -> None:
            raise RuntimeError("declined")

    database = Doomed.__acidic_workflow__.database
    with acidic_job.recoverable(recorder.name), pytest.raises(RuntimeError):
        Doomed.run(key="d1")
    time.sleep(0.1)
    assert acidic_job.recover(database).requeued == 1
    (recovered,) = records("recovered")
    assert recovered.levelno == logging.INFO
    assert fields(recovered, "key", "workflow", "adapter", "job", "attempt", "dead") == {
        "key": "d1", "workflow": "Doomed", "adapter": "recorder", "job": "recorder.resume",
        "attempt": 1, "dead": False}
    records.clear()
    assert acidic_job.drain(database, older_than=0) == 1  # the resume job, not yet acked
    (drained,) = records("drained")
    assert drained.levelno == logging.INFO and drained.delivered == 1
    [result, again] = recorder.perform(database)          # sent twice: it runs once more
    assert isinstance(result, RuntimeError) and isinstance(again, acidic_job.DeadRun)


def test_step_hooks_see_each_step_start_and_end_with_its_attributes(dbenv: Any,
                                                                    recorder: Any) -> None:
    dbenv.table("log", "step TEXT")
    fail = ["charge"]
    Booking = booking(dbenv.db, dbenv.ph, fail)
    traces: List[acidic_job.StepTrace] = []
    hook = acidic_job.add_step_hook(traces.append)
    try:
        with pytest.raises(RuntimeError):
            Booking.run(1, key="k2")
        fail.clear()
        assert Booking.run(1, key="k2") is True
    finally:
        acidic_job.remove_step_hook(hook)
    seen = [(t.phase, t.step, t.outcome, t.attributes.get("ride")) for t in traces]
    assert seen == [
        ("start", "reserve", None, 0), ("end", "reserve", "committed", 7),
        ("start", "charge", None, 7), ("end", "charge", "failed", 7),
        ("start", "charge", None, 7), ("end", "charge", "committed", 8),
        ("start", "notify", None, 8), ("end", "notify", "committed", 8),
    ]
    failed = traces[3]
    assert isinstance(failed.error, RuntimeError) and str(failed.error) == "card declined"
    assert failed.duration is not None and failed.duration >= 0
    assert {t.workflow for t in traces} == {"Booking"} and {t.key for t in traces} == {"k2"}
    assert [t.attempt for t in traces if t.phase == "start"] == [1, 1, 2, 2]
    # On SQLite a new run's row is written at the end of its first step: the first start
    # trace has no id yet; every later trace has the run's.
    ids = {t.run_id for t in traces[1:]}
    assert len(ids) == 1 and next(iter(ids)) > 0
    assert traces[0].run_id == (0 if dbenv.group == "sqlite" else next(iter(ids)))


def test_a_failing_hook_is_logged_and_changes_nothing(sqlite_env: Any, records: Any,
                                                      caplog: Any) -> None:
    sqlite_env.table("log", "step TEXT")
    Booking = booking(sqlite_env.db, "?", [])

    def broken(trace: acidic_job.StepTrace) -> None:
        raise ValueError("the tracer is down")

    acidic_job.add_step_hook(broken)
    try:
        assert Booking.run(1) is True
    finally:
        acidic_job.remove_step_hook(broken)
    assert sum("step hook" in r.getMessage() and r.exc_info is not None
               for r in caplog.records) == 6  # start and end of three steps
    assert len(records("step_done")) == 3


def test_nothing_crosses_into_python_when_nobody_listens(sqlite_env: Any, caplog: Any,
                                                         monkeypatch: Any) -> None:
    sqlite_env.table("log", "step TEXT")
    Booking = booking(sqlite_env.db, "?", [])
    calls: List[int] = []
    real = acidic_job.events.handle
    monkeypatch.setattr(acidic_job.events, "handle", lambda ev: (calls.append(ev.type),
                                                                 real(ev)))
    caplog.set_level(logging.WARNING, logger="acidic_job")
    assert Booking.run(1) is True
    assert calls == []                      # the mask kept every event in C
    caplog.set_level(logging.DEBUG, logger="acidic_job")
    assert Booking.run(2) is True
    assert calls.count(acidic_job._native.EVENT_STEP_COMMITTED) == 3
    assert acidic_job._native.EVENT_STEP_STARTED not in calls  # no hook: not asked for
