"""Celery 5.2 workers (solo and prefork) on a real Redis, with the workflow store on SQLite."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
import uuid
from typing import Any, Iterator

import pytest

import acidic_job
from acidic_job import adapters
from conftest import HERE, Workers, queue_env, wait_for
from jobs_common import create_tables, sql

pytestmark = pytest.mark.part("celery")


class CeleryEnv:
    def __init__(self, tmp: str) -> None:
        self.db = f"sqlite:{os.path.join(tmp, 'celery.db')}"
        self.queue = f"celery-{uuid.uuid4().hex[:8]}"
        self.scratch = tmp
        self.env = queue_env(self.db, self.queue, tmp)
        os.environ.update({k: self.env[k] for k in ("AJ_JOBS_DB", "AJ_JOBS_BROKER",
                                                     "AJ_JOBS_QUEUE", "AJ_JOBS_DIR")})
        create_tables(self.db)
        self.jobs = importlib.import_module("celery_jobs")
        self.workers = Workers(self.env, tmp)

    def worker_args(self, queue: str, pool: str = "solo", concurrency: int = 1) -> list:
        return ["-m", "celery", "-A", "celery_jobs", "worker", f"--pool={pool}",
                f"--concurrency={concurrency}", "--without-heartbeat", "--without-gossip",
                "--without-mingle", "-l", "info", "-Q", queue,
                "-n", f"{uuid.uuid4().hex[:8]}@%h"]

    def sql(self, text: str, params: Any = ()) -> list:
        return sql(self.db, text, params)

    def staged(self) -> int:
        return self.sql("SELECT count(*) FROM staged_acidic_jobs")[0][0]

    def performed(self, label: str) -> int:
        return self.sql("SELECT count(*) FROM performed WHERE label = ?", (label,))[0][0]

    def steps(self, label: str) -> list:
        return [r[0] for r in self.sql("SELECT step FROM step_rows WHERE label = ? ORDER BY "
                                       "rowid", (label,))]

    def key(self, job_name: str, label: str) -> Any:
        rows = self.sql("SELECT recovery_point, locked_at, error_object FROM acidic_job_keys "
                        "WHERE job_name = ? AND job_args LIKE ?", (job_name, f'%"{label}"%'))
        return rows[0] if rows else None


@pytest.fixture(scope="module")
def cel(tmp_path_factory: Any) -> Iterator[CeleryEnv]:
    env = CeleryEnv(str(tmp_path_factory.mktemp("celery")))
    env.main_worker = env.workers.start(env.worker_args(env.queue), "solo")
    yield env
    env.workers.stop_all()


def test_a_staged_task_is_sent_after_commit_and_acknowledged_once_it_succeeded(cel: CeleryEnv
                                                                               ) -> None:
    assert cel.jobs.Booking.run("a") is True
    wait_for(lambda: cel.performed("a:staged") == 1 and cel.staged() == 0,
             "the staged task to run and be acknowledged")
    assert cel.steps("a") == ["book"]


def test_a_rolled_back_step_never_sends_its_staged_task(cel: CeleryEnv) -> None:
    with pytest.raises(RuntimeError, match="booking failed"):
        cel.jobs.Booking.run("b", True)
    assert cel.staged() == 0 and cel.steps("b") == []
    # the worker consumes one queue in order: once a later task ran, "b" would have too
    assert cel.jobs.Booking.run("c") is True
    wait_for(lambda: cel.performed("c:staged") == 1 and cel.staged() == 0, "task c")
    assert cel.performed("b:staged") == 0


def test_a_workflow_task_awaits_parallel_tasks_and_resumes_after_them(cel: CeleryEnv) -> None:
    cel.jobs.FanOut.task.apply_async(("f",), queue=cel.queue)
    wait_for(lambda: (cel.key("celery_jobs.FanOut", "f") or [None])[0] == "FINISHED",
             "the fan-out workflow to finish")
    assert cel.steps("f") == ["prepare", "charge", "finish"]
    assert cel.performed("f:charged") == 1 and cel.performed("f:notified") == 1
    wait_for(lambda: cel.staged() == 0, "the continuation to be acknowledged")
    assert cel.sql("SELECT count(*) FROM acidic_job_batches")[0][0] == 0
    assert cel.key("celery_jobs.FanOut", "f")[2] is None


def test_drain_delivers_staged_tasks_that_were_never_sent(cel: CeleryEnv) -> None:
    adapter = adapters._adapters.pop("celery")  # this process "dies" before sending
    try:
        assert cel.jobs.Booking.run("d") is True
    finally:
        adapters.install_adapter(adapter)
    assert cel.staged() == 1 and cel.performed("d:staged") == 0
    assert acidic_job.drain(cel.db, older_than=3600) == 0  # too recent
    assert acidic_job.drain(cel.db, older_than=0) == 1
    wait_for(lambda: cel.performed("d:staged") == 1 and cel.staged() == 0, "drained task d")


def test_the_drain_command_delivers_from_another_process(cel: CeleryEnv) -> None:
    adapter = adapters._adapters.pop("celery")
    try:
        assert cel.jobs.Booking.run("e") is True
    finally:
        adapters.install_adapter(adapter)
    assert cel.staged() == 1
    out = subprocess.run([sys.executable, "-m", "acidic_job", "drain", "--url", cel.db,
                          "--older-than", "0", "--import", "celery_jobs"], cwd=HERE,
                         env=cel.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "delivered 1 staged job(s)" in out.stdout
    wait_for(lambda: cel.performed("e:staged") == 1 and cel.staged() == 0, "drained task e")
    bad = subprocess.run([sys.executable, "-m", "acidic_job", "drain"], cwd=HERE, env=cel.env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--url" in bad.stderr


def test_a_prefork_worker_opens_its_own_connections_after_fork(cel: CeleryEnv) -> None:
    queue = f"{cel.queue}-prefork"
    env = dict(cel.env, AJ_JOBS_WARM="1")
    workers = Workers(env, cel.scratch)
    proc = workers.start(cel.worker_args(f"{queue},{cel.queue}", "prefork", 2), "prefork")
    try:
        for label in ("p1", "p2", "p3"):
            cel.jobs.Booking.task.apply_async((label,), queue=queue)
        wait_for(lambda: all(cel.performed(f"{x}:staged") == 1 for x in ("p1", "p2", "p3")),
                 "the prefork worker's workflows and their staged tasks")
        wait_for(lambda: cel.staged() == 0, "acknowledgements")
        for label in ("p1", "p2", "p3"):
            assert cel.steps(label) == ["book"]
            assert cel.key("celery_jobs.Booking", label)[0] == "FINISHED"
    finally:
        workers.stop_all()
    assert "AJ_EMISUSE" not in workers.log(proc) and "MisuseError" not in workers.log(proc)


def test_a_worker_killed_in_the_middle_of_a_step_and_rerun_writes_the_step_once(
        cel: CeleryEnv) -> None:
    queue = f"{cel.queue}-slow"
    first = cel.workers.start(cel.worker_args(queue), "slow-1")
    cel.jobs.Slow.task.apply_async(("k",), queue=queue)
    wait_for(lambda: os.path.exists(os.path.join(cel.scratch, "k.in_step")),
             "the worker to be inside the step")
    cel.workers.kill(first)
    assert cel.steps("k") == ["first"]          # the killed step's row never committed
    point, locked_at, _ = cel.key("celery_jobs.Slow", "k")
    assert point == "blocking" and locked_at is not None
    cel.workers.start(cel.worker_args(queue), "slow-2")
    cel.jobs.Slow.task.apply_async(("k",), queue=queue)  # the rerun
    wait_for(lambda: cel.key("celery_jobs.Slow", "k")[0] == "FINISHED", "the rerun")
    assert cel.steps("k") == ["first", "blocking"]


def test_a_borrowed_sqlite3_connection_sends_staged_tasks_after_its_commit(cel: CeleryEnv
                                                                          ) -> None:
    import sqlite3
    conn = sqlite3.connect(cel.db[len("sqlite:"):])

    @acidic_job.workflow(conn, name="BorrowedBooking")
    class BorrowedBooking:
        def __init__(self, label: str) -> None:
            self.label = label

        @acidic_job.step
        def book(self, tx: Any) -> None:
            tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)", (self.label, "book"))
            cel.jobs.record.perform_transactionally(f"{self.label}:staged")

        @acidic_job.step
        def fail_once(self, tx: Any) -> None:
            cel.jobs.record.perform_transactionally(f"{self.label}:rolled-back")
            if cel.steps(self.label) == ["book"]:
                tx.execute("INSERT INTO step_rows (label, step) VALUES (?, ?)",
                           (self.label, "failed"))
                raise RuntimeError("once")

    with pytest.raises(RuntimeError, match="once"):
        BorrowedBooking.run("s")
    wait_for(lambda: cel.performed("s:staged") == 1 and cel.staged() == 0, "task s")
    assert cel.steps("s") == ["book"]
    conn.execute("INSERT INTO step_rows (label, step) VALUES ('s', 'later')")
    conn.commit()
    assert BorrowedBooking.run("s") is True
    wait_for(lambda: cel.performed("s:rolled-back") == 1 and cel.staged() == 0, "task s again")
    conn.close()


def test_a_worker_killed_mid_step_is_recovered_under_the_same_task_id(cel: CeleryEnv) -> None:
    """Celery acknowledges a task when it starts: a SIGKILLed worker's task is gone and
    its run stays locked. The next worker's periodic recovery (every second here) hands
    it back once the lock timeout (2 s) has passed, as acidic_job.resume with the run's
    idempotency key as the task id; it resumes at the killed step, every step once."""
    queue = f"{cel.queue}-recover"
    workers = Workers(dict(cel.env, AJ_JOBS_RECOVER_EVERY="1"), cel.scratch)
    try:
        first = workers.start(cel.worker_args(queue), "recover-1")
        cel.jobs.Stranded.task.apply_async(("stranded",), queue=queue)
        wait_for(lambda: os.path.exists(os.path.join(cel.scratch, "stranded.in_step")),
                 "the worker to be inside the step")
        workers.kill(first)
        assert cel.steps("stranded") == ["first"]
        point, locked_at, _ = cel.key("celery_jobs.Stranded", "stranded")
        assert point == "blocking" and locked_at is not None
        second = workers.start(cel.worker_args(queue), "recover-2")
        wait_for(lambda: cel.key("celery_jobs.Stranded", "stranded")[0] == "FINISHED",
                 "recovery to resume the run")
        assert cel.steps("stranded") == ["first", "blocking", "last"]
        (key,) = cel.sql("SELECT idempotency_key FROM acidic_job_keys WHERE job_name = ?",
                         ("celery_jobs.Stranded",))[0]
        assert cel.performed(f"stranded:task:{key}") == 1   # the resumed task's id is the key
        wait_for(lambda: cel.staged() == 0, "the resume task to be acknowledged")
        assert "acidic_job.recover" in workers.log(second)
    finally:
        workers.stop_all()


def test_a_run_failing_every_time_is_dead_after_max_attempts(cel: CeleryEnv) -> None:
    queue = f"{cel.queue}-doomed"
    workers = Workers(dict(cel.env, AJ_JOBS_RECOVER_EVERY="1"), cel.scratch)
    try:
        workers.start(cel.worker_args(queue), "doomed")
        cel.jobs.Doomed.task.apply_async(("doomed",), queue=queue)
        wait_for(lambda: cel.sql("SELECT dead_at FROM acidic_job_keys WHERE job_name = ?",
                                 ("celery_jobs.Doomed",)) not in ([], [(None,)]),
                 "the run to be dead")
        attempts, error = cel.sql("SELECT attempts, error_object FROM acidic_job_keys "
                                  "WHERE job_name = ?", ("celery_jobs.Doomed",))[0]
        assert attempts == 3 and "the card was declined" in error
        time.sleep(2.5)                  # sweeps go on; a dead run is left alone
        with open(os.path.join(cel.scratch, "doomed.attempts")) as f:
            assert f.read().count("attempt") == 3
    finally:
        workers.stop_all()
