"""Error messages: advice appears once, and a hint names only the cause that happened."""
from __future__ import annotations

import sqlite3
from typing import Any

import pytest

import acidic_job
from acidic_job import errors

RETRY = "can be retried"
FIX_FIRST = "fix the statement or the schema first"


def single_step(db: Any, name: str, body: Any, **options: Any) -> Any:
    class Job(acidic_job.Workflow, database=db, name=name, **options):
        def __init__(self, value: int = 0) -> None:
            self.value = value

        @acidic_job.step
        def only(self, tx: Any) -> None:
            body(tx)

    return Job


def test_the_advice_of_a_mismatch_and_of_a_locked_run_appears_once(dbenv: Any) -> None:
    Job = single_step(dbenv.db, "Advice", lambda tx: None)
    assert Job.run(1, key="shared") is True
    with pytest.raises(acidic_job.MismatchedIdempotencyKeyAndJobArguments) as mismatch:
        Job.run(2, key="shared")
    text = str(mismatch.value)
    assert text.count("use a new key") == 1 and "(" not in text.replace('("', "")

    from acidic_job import _native
    store = _native.open(dbenv.url)
    run = _native.acquire(store, Job.__acidic_workflow__.native, "held", "Advice",
                          '{"value":0}', "{}")
    try:
        with pytest.raises(acidic_job.LockedIdempotencyKey) as locked:
            Job.run(key="held")
    finally:
        run.close()
        store.close()
    text = str(locked.value)
    # the core's message says when recovery takes over; the layer adds nothing
    assert text.count("recovery hands the run back") == 1


def test_a_missing_column_is_not_called_retriable(dbenv: Any) -> None:
    dbenv.table("rides", "id INTEGER")
    ph = dbenv.ph
    Job = single_step(dbenv.db, "MissingColumn",
                      lambda tx: tx.execute(f"INSERT INTO rides (nope) VALUES ({ph})", (1,)))
    with pytest.raises(Exception) as info:
        Job.run()
    if isinstance(info.value, acidic_job.DatabaseError):   # URL stores: the core's error
        text = str(info.value)
        assert RETRY not in text and FIX_FIRST in text
        assert text.count(FIX_FIRST) == 1
    else:                                                   # the driver's own error
        assert "nope" in str(info.value)


def test_a_busy_sqlite_file_says_one_writer_not_a_row_conflict(tmp_path: Any) -> None:
    path = str(tmp_path / "busy.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    Job = single_step(f"sqlite:{path}", "Busy", lambda tx: None, busy_timeout=0.05,
                      conflict_retries=0)
    assert Job.run(1) is True          # the tables exist; now another writer holds the lock
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(acidic_job.SerializationConflict) as info:
            Job.run(2)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    text = str(info.value)
    assert "one writer at a time" in text and "busy timeout" in text
    assert "same rows" not in text and "deadlock" not in text
    assert text.count("one writer") == 1  # no second hint on top of the core's


def test_a_lost_connection_is_called_retriable(pg_url_env: Any) -> None:
    def kill_my_backend(tx: Any) -> None:
        tx.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    Job = single_step(pg_url_env.db, "Lost", kill_my_backend)
    with pytest.raises(acidic_job.DatabaseError) as info:
        Job.run()
    text = str(info.value)
    assert RETRY in text and FIX_FIRST not in text
    assert text.count(RETRY) == 1


@pytest.mark.parametrize("message, cls, expected, absent", [
    ("PostgreSQL exec failed: could not serialize access (SQLSTATE 40001)",
     errors.SerializationConflict, "changed the same rows", "one writer"),
    ("PostgreSQL exec failed: deadlock detected (SQLSTATE 40P01)",
     errors.SerializationConflict, "waited on it", "same rows"),
    ("SQLite: BEGIN IMMEDIATE: database is locked", errors.SerializationConflict,
     "one writer", "same rows"),
    ("PostgreSQL exec failed: index row size 3080 exceeds btree version 4 maximum 2704 "
     "(SQLSTATE 54000)", errors.DatabaseError, FIX_FIRST, RETRY),
    ("connection lost: server closed the connection unexpectedly", errors.DatabaseError,
     RETRY, FIX_FIRST),
    ("PostgreSQL exec failed: out of shared memory (SQLSTATE 53200)", errors.DatabaseError,
     RETRY, FIX_FIRST),
    ("SQLite: cannot open \"/x/y.db\": unable to open database file", errors.DatabaseError,
     "", RETRY),
    ("the run's recovery point \"old\" is not a step of the workflow",
     errors.UnknownRecoveryPoint, "old name", ""),
    ("aj_run_goto: the workflow has no step named \"nope\"", errors.UnknownRecoveryPoint,
     "", "old name"),
])
def test_each_hint_follows_the_situation_the_message_reports(
        message: str, cls: type, expected: str, absent: str) -> None:
    text = str(cls(message))
    assert text.startswith(message)
    if expected:
        assert text.count(expected) == 1, text
    else:
        assert text == message  # nothing known to add
    if absent:
        assert absent not in text
    assert str(cls(text)) == text  # a message that already holds its hint gets no second
