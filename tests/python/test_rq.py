"""RQ 1.13 workers (burst SimpleWorker and forking Worker) on a real Redis, with the
workflow store on PostgreSQL."""
from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
import uuid
from typing import Any, Iterator, List

import pytest

import acidic_job
from acidic_job import adapters
from conftest import HERE, PG_URL, Workers, pg_url_with_schema, queue_env, wait_for
from jobs_common import create_tables, sql

pytestmark = pytest.mark.part("rq")


class RQEnv:
    def __init__(self, tmp: str) -> None:
        if not PG_URL:
            pytest.fail("AJ_TEST_PG_URL is not set (tests/python/run.sh starts a server)")
        import psycopg
        self.schema = "rq_" + uuid.uuid4().hex[:10]
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {self.schema}")
        self.db = pg_url_with_schema(self.schema)
        self.queue = f"rq-{uuid.uuid4().hex[:8]}"
        self.scratch = tmp
        self.env = queue_env(self.db, self.queue, tmp)
        os.environ.update({k: self.env[k] for k in ("AJ_JOBS_DB", "AJ_JOBS_BROKER",
                                                     "AJ_JOBS_QUEUE", "AJ_JOBS_DIR")})
        create_tables(self.db)
        self.jobs = importlib.import_module("rq_jobs")
        self.workers = Workers(self.env, tmp)
        self.bursts = 0

    def burst(self, queue: str = "", simple: bool = True) -> str:
        """Run a worker until the queue is empty; returns its output."""
        self.bursts += 1
        args = [sys.executable, "-m", "rq.cli", "worker", "--burst", "--url",
                self.env["AJ_JOBS_BROKER"], "--name", f"burst-{uuid.uuid4().hex[:8]}"]
        if simple:
            args += ["--worker-class", "rq.worker.SimpleWorker"]
        out = subprocess.run(args + [queue or self.queue], cwd=HERE, env=self.env,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout + out.stderr

    def sql(self, text: str, params: Any = ()) -> list:
        return sql(self.db, text, params)

    def staged(self) -> int:
        return self.sql("SELECT count(*) FROM staged_acidic_jobs")[0][0]

    def performed(self, label: str) -> int:
        return self.sql("SELECT count(*) FROM performed WHERE label = ?", (label,))[0][0]

    def steps(self, label: str) -> list:
        return [r[0] for r in self.sql("SELECT step FROM step_rows WHERE label = ? ORDER BY "
                                       "ctid", (label,))]

    def key(self, job_name: str, label: str) -> Any:
        rows = self.sql("SELECT recovery_point, locked_at, error_object FROM acidic_job_keys "
                        "WHERE job_name = ? AND job_args LIKE ?", (job_name, f'%"{label}"%'))
        return rows[0] if rows else None

    def close(self) -> None:
        self.workers.stop_all()
        import psycopg
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {self.schema} CASCADE")


@pytest.fixture(scope="module")
def rqe(tmp_path_factory: Any) -> Iterator[RQEnv]:
    env = RQEnv(str(tmp_path_factory.mktemp("rq")))
    yield env
    env.close()


def test_a_staged_job_is_enqueued_after_commit_and_acknowledged_once_it_succeeded(rqe: RQEnv
                                                                                 ) -> None:
    assert rqe.jobs.Booking.run("a") is True
    assert rqe.staged() == 1            # sent, not yet performed
    rqe.burst()
    assert rqe.performed("a:staged") == 1
    assert rqe.staged() == 0            # acknowledged by the on_success callback
    assert rqe.steps("a") == ["book"]


def test_a_rolled_back_step_never_enqueues_its_staged_job(rqe: RQEnv) -> None:
    with pytest.raises(RuntimeError, match="booking failed"):
        rqe.jobs.Booking.run("b", True)
    assert rqe.staged() == 0
    rqe.burst()
    assert rqe.performed("b:staged") == 0 and rqe.steps("b") == []
    assert rqe.key("rq_jobs.Booking", "b")[0] == "book"


def test_a_workflow_job_awaits_parallel_jobs_and_resumes_after_them(rqe: RQEnv) -> None:
    rqe.jobs.fan_out.enqueue("f")
    rqe.burst()   # the workflow, both awaited jobs, then the continuation
    assert rqe.key("rq_jobs.FanOut", "f")[0] == "FINISHED"
    assert rqe.steps("f") == ["prepare", "charge", "finish"]
    assert rqe.performed("f:charged") == 1 and rqe.performed("f:notified") == 1
    assert rqe.staged() == 0
    assert rqe.sql("SELECT count(*) FROM acidic_job_batches")[0][0] == 0


def test_awaits_with_a_forking_worker(rqe: RQEnv) -> None:
    rqe.jobs.fan_out.enqueue("g")
    rqe.burst(simple=False)
    assert rqe.key("rq_jobs.FanOut", "g")[0] == "FINISHED"
    assert rqe.steps("g") == ["prepare", "charge", "finish"]
    assert rqe.staged() == 0


def test_drain_delivers_staged_jobs_that_were_never_enqueued(rqe: RQEnv) -> None:
    adapter = adapters._adapters.pop("rq")
    try:
        assert rqe.jobs.Booking.run("d") is True
    finally:
        adapters.install_adapter(adapter)
    assert rqe.staged() == 1
    rqe.burst()
    assert rqe.performed("d:staged") == 0     # nothing was in the queue
    assert acidic_job.drain(rqe.db, older_than=0) == 1
    rqe.burst()
    assert rqe.performed("d:staged") == 1 and rqe.staged() == 0


def test_the_drain_command_with_rq_redis(rqe: RQEnv) -> None:
    adapter = adapters._adapters.pop("rq")
    try:
        assert rqe.jobs.Booking.run("e") is True
    finally:
        adapters.install_adapter(adapter)
    out = subprocess.run([sys.executable, "-m", "acidic_job", "drain", "--url", rqe.db,
                          "--older-than", "0", "--rq-redis", rqe.env["AJ_JOBS_BROKER"],
                          "--rq-queue", rqe.queue], cwd=HERE, env=rqe.env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "delivered 1 staged job(s)" in out.stdout
    rqe.burst()
    assert rqe.performed("e:staged") == 1 and rqe.staged() == 0


def test_a_worker_killed_in_the_middle_of_a_step_and_rerun_writes_the_step_once(rqe: RQEnv
                                                                               ) -> None:
    queue = f"{rqe.queue}-slow"
    worker = rqe.workers.start(["-m", "rq.cli", "worker", "--url", rqe.env["AJ_JOBS_BROKER"],
                                "--name", f"slow-{uuid.uuid4().hex[:8]}", queue], "rq-slow")
    from rq import Queue
    Queue(queue, connection=rqe.jobs.redis).enqueue("rq_jobs.slow", "k")
    wait_for(lambda: os.path.exists(os.path.join(rqe.scratch, "k.in_step")),
             "the worker to be inside the step")
    # RQ runs the job in a work horse with a session of its own: kill it, then the worker
    with open(os.path.join(rqe.scratch, "k.in_step")) as f:
        horse = int(f.read())
    os.kill(horse, signal.SIGKILL)
    rqe.workers.kill(worker)
    assert rqe.steps("k") == ["first"]
    point, locked_at, _ = rqe.key("rq_jobs.Slow", "k")
    assert point == "blocking" and locked_at is not None
    Queue(queue, connection=rqe.jobs.redis).enqueue("rq_jobs.slow", "k")  # the rerun
    rqe.burst(queue, simple=False)
    assert rqe.key("rq_jobs.Slow", "k")[0] == "FINISHED"
    assert rqe.steps("k") == ["first", "blocking"]


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_a_borrowed_postgres_connection_stages_jobs_in_its_own_transaction(rqe: RQEnv,
                                                                          driver: str) -> None:
    if driver == "psycopg":
        import psycopg
        conn: Any = psycopg.connect(rqe.db)
    else:
        import psycopg2
        conn = psycopg2.connect(rqe.db)
    label = f"borrowed-{driver}"

    @acidic_job.workflow(conn, name=f"Borrowed-{driver}")
    class Borrowed:
        attempts = [0]  # not persisted (no annotation): counts real attempts

        @acidic_job.step
        def book(self, tx: Any) -> None:
            tx.execute("INSERT INTO step_rows (label, step) VALUES (%s, %s)", (label, "book"))
            rqe.jobs.record.perform_transactionally(f"{label}:staged")

        @acidic_job.step
        def fail_once(self, tx: Any) -> None:
            self.attempts[0] += 1
            rqe.jobs.record.perform_transactionally(f"{label}:second")
            if self.attempts[0] == 1:
                raise RuntimeError("once")

    with pytest.raises(RuntimeError, match="once"):
        Borrowed.run()
    assert rqe.staged() == 1  # only the committed step's job
    rqe.burst()
    assert rqe.performed(f"{label}:staged") == 1 and rqe.performed(f"{label}:second") == 0
    assert rqe.staged() == 0
    assert Borrowed.run() is True
    rqe.burst()
    assert rqe.performed(f"{label}:second") == 1 and rqe.staged() == 0
    assert rqe.steps(label) == ["book"]
    conn.close()


def test_an_awaiting_run_returns_false_and_runs_nothing_until_its_jobs_succeeded(rqe: RQEnv
                                                                                ) -> None:
    assert rqe.jobs.FanOut.run("h") is False          # staged its awaited jobs, waits
    assert rqe.steps("h") == ["prepare", "charge"]
    assert rqe.key("rq_jobs.FanOut", "h")[0] == "finish"
    assert rqe.jobs.FanOut.run("h") is False          # still waiting: nothing runs
    assert rqe.steps("h") == ["prepare", "charge"]
    assert rqe.staged() == 2
    rqe.burst()                                       # both jobs, then the continuation
    assert rqe.steps("h") == ["prepare", "charge", "finish"]
    assert rqe.jobs.FanOut.run("h") is True and rqe.staged() == 0


def test_a_workflow_job_is_retried_by_the_scheduler_and_resumes_at_the_failed_step(
        rqe: RQEnv) -> None:
    queue = f"{rqe.queue}-retry"
    assert rqe.jobs.Flaky.job.name == "rq_jobs.Flaky"
    rqe.jobs.Flaky.job.enqueue("r")
    worker = rqe.workers.start(["-m", "rq.cli", "worker", "--with-scheduler", "--url",
                                rqe.env["AJ_JOBS_BROKER"], "--name",
                                f"sched-{uuid.uuid4().hex[:8]}", queue], "rq-scheduler")
    try:
        wait_for(lambda: (rqe.key("rq_jobs.Flaky", "r") or [None])[0] == "FINISHED",
                 "the retried workflow to finish")
    finally:
        rqe.workers.stop(worker)
    # the failed attempt's row rolled back with its step; the retry wrote it once
    assert rqe.steps("r") == ["first", "flaky"]
    assert "the first attempt fails" in rqe.workers.log(worker)
    assert os.path.exists(os.path.join(rqe.scratch, "r.failed"))


def test_a_decorated_workflow_job_is_staged_and_run_under_its_workflow_name(rqe: RQEnv
                                                                          ) -> None:
    assert rqe.jobs.Stager.run("s") is True
    assert rqe.staged() == 1
    assert rqe.sql("SELECT job_name FROM staged_acidic_jobs")[0][0] == "rq_jobs.Decorated"
    rqe.burst()
    assert rqe.steps("s") == ["only"] and rqe.staged() == 0
    assert rqe.key("rq_jobs.Decorated", "s")[0] == "FINISHED"


def scheduler_worker(rqe: RQEnv, queues: List[str], name: str) -> Any:
    return rqe.workers.start(["-m", "rq.cli", "worker", "--with-scheduler", "--url",
                              rqe.env["AJ_JOBS_BROKER"], "--name",
                              f"{name}-{uuid.uuid4().hex[:8]}"] + queues, name)


def test_a_work_horse_killed_mid_step_is_recovered_under_the_same_job_id(rqe: RQEnv) -> None:
    """The run of a killed work horse stays locked; the recovery sweep (an RQ job
    scheduled every second here) hands it back once the lock timeout (2 s) has passed,
    as acidic_job.rq.resume on its queue with the run's idempotency key as the job id;
    it resumes at the killed step, every step once."""
    from rq import Queue
    queue = f"{rqe.queue}-recover"
    adapter = adapters.installed("rq")
    first = rqe.workers.start(["-m", "rq.cli", "worker", "--url", rqe.env["AJ_JOBS_BROKER"],
                               "--name", f"kill-{uuid.uuid4().hex[:8]}", queue], "rq-kill")
    rqe.jobs.Stranded.job.enqueue("stranded")
    wait_for(lambda: os.path.exists(os.path.join(rqe.scratch, "stranded.in_step")),
             "the work horse to be inside the step")
    with open(os.path.join(rqe.scratch, "stranded.in_step")) as f:
        os.kill(int(f.read()), signal.SIGKILL)
    rqe.workers.kill(first)
    assert rqe.steps("stranded") == ["first"]
    point, locked_at, _ = rqe.key("rq_jobs.Stranded", "stranded")
    assert point == "blocking" and locked_at is not None
    sweeps = Queue(adapter.queue, connection=rqe.jobs.redis)
    worker = scheduler_worker(rqe, [queue, adapter.queue], "rq-recover")
    try:
        assert acidic_job.rq.schedule_recovery(1.0) is not None
        wait_for(lambda: rqe.key("rq_jobs.Stranded", "stranded")[0] == "FINISHED",
                 "recovery to resume the run")
        wait_for(lambda: rqe.staged() == 0, "the resume job to be acknowledged")
    finally:
        rqe.workers.stop(worker)
    assert rqe.steps("stranded") == ["first", "blocking", "last"]
    (key,) = rqe.sql("SELECT idempotency_key FROM acidic_job_keys WHERE job_name = ?",
                     ("rq_jobs.Stranded",))[0]
    assert rqe.performed(f"stranded:job:{key}") == 1       # the resumed job's id is the key
    log = rqe.workers.log(worker)
    assert "acidic_job.rq.sweep" in log and "acidic_job.rq.resume" in log
    assert sweeps.name in log


def test_a_run_failing_every_time_is_dead_after_max_attempts(rqe: RQEnv) -> None:
    queue = rqe.queue  # the sweeps' queue too
    worker = scheduler_worker(rqe, [queue], "rq-doomed")
    try:
        acidic_job.rq.schedule_recovery(1.0)
        rqe.jobs.Doomed.job.enqueue("doomed")
        wait_for(lambda: rqe.sql("SELECT dead_at FROM acidic_job_keys WHERE job_name = ?",
                                 ("rq_jobs.Doomed",)) not in ([], [(None,)]),
                 "the run to be dead")
        attempts, error = rqe.sql("SELECT attempts, error_object FROM acidic_job_keys "
                                  "WHERE job_name = ?", ("rq_jobs.Doomed",))[0]
        assert attempts == 3 and "the card was declined" in error
        time.sleep(2.5)                  # sweeps go on; a dead run is left alone
    finally:
        rqe.workers.stop(worker)
    with open(os.path.join(rqe.scratch, "doomed.attempts")) as f:
        assert f.read().count("attempt") == 3


def test_the_acidic_job_command_retries_a_failed_run_through_rq(rqe: RQEnv) -> None:
    """``acidic-job retry --rq-redis``: the resume job goes to RQ at once (the command
    installs the RQ adapter) and a worker runs the run again at its failed step."""
    rqe.jobs.Doomed.job.enqueue("cli-retry")
    rqe.burst()
    (key, attempts), = rqe.sql("SELECT idempotency_key, attempts FROM acidic_job_keys "
                               "WHERE job_name = ? AND job_args LIKE ?",
                               ("rq_jobs.Doomed", '%"cli-retry"%'))
    assert attempts == 1
    command = os.path.join(os.path.dirname(sys.executable), "acidic-job")
    out = subprocess.run([command, "retry", key, "--database", rqe.db, "--rq-redis",
                          rqe.env["AJ_JOBS_BROKER"], "--rq-queue", rqe.queue], cwd=HERE,
                         env=rqe.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "its resume job was handed to the rq adapter" in out.stdout
    assert rqe.sql("SELECT attempts, error_object FROM acidic_job_keys WHERE "
                   "idempotency_key = ?", (key,)) == [(0, None)]
    rqe.burst()  # the resume job: the run fails at its step once more
    with open(os.path.join(rqe.scratch, "cli-retry.attempts")) as f:
        assert f.read().count("attempt") == 2
    (attempts, error), = rqe.sql("SELECT attempts, error_object FROM acidic_job_keys WHERE "
                                 "idempotency_key = ?", (key,))
    assert attempts == 1 and "the card was declined" in error
