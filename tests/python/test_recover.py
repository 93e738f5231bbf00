"""acidic_job.recover on every kind of database, with a queue adapter of the test that
records what recovery hands it (the Celery and RQ workers are in test_celery.py and
test_rq.py): a run whose process was SIGKILLed mid-step comes back under its key and
resumes at that step; a failed run is retried when due; a run failing every time is
dead after max_attempts; sweeps racing hand a run out once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any, List

import pytest

import acidic_job
import acidic_job.adapters
import killable
from recording import RecordingAdapter

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def recorder() -> Any:
    previous = acidic_job.adapters.installed(RecordingAdapter.name)
    adapter = acidic_job.adapters.install_adapter(RecordingAdapter())
    yield adapter
    if previous is not None:
        acidic_job.adapters.install_adapter(previous)


def test_a_run_killed_mid_step_is_handed_back_under_its_key_and_resumes_there(
        dbenv: Any, recorder: RecordingAdapter) -> None:
    env = dbenv
    env.table("step_rows", "order_id INTEGER, step TEXT")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "killable.py"), env.kind,
                             env.url, "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, cwd=HERE)
    try:
        assert proc.stdout.readline().strip() == "IN_STEP"  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    row = env.key_row("Killable")
    assert row["recovery_point"] == "ship" and row["locked_at"] is not None
    key = row["idempotency_key"]
    Killable = killable.make(env.make_db(), env.ph, block=False, lock_timeout=1)
    database = Killable.__acidic_workflow__.database
    assert acidic_job.recover(database) == acidic_job.Recovered(0, 0)  # its lock is fresh
    time.sleep(1.2)                                                   # the lock timeout
    assert acidic_job.recover(database) == acidic_job.Recovered(1, 0)
    assert acidic_job.recover(database) == acidic_job.Recovered(0, 0)  # once per timeout
    [(staged_id, job_name, payload)] = recorder.sent
    assert payload["id"] == key and payload["args"][0]["key"] == key
    assert recorder.perform(database) == [True]
    assert sorted(env.sql("SELECT step FROM step_rows")) == [("reserve",), ("ship",)]
    row = env.key_row("Killable")
    assert row["recovery_point"] == "FINISHED" and row["locked_at"] is None
    assert env.sql("SELECT count(*) FROM staged_acidic_jobs")[0][0] == 0
    assert env.sql("SELECT attempts FROM acidic_job_keys")[0][0] == 2


def flaky_workflow(db: Any, ph: str, name: str, failures: List[int], **options: Any) -> Any:
    """One step that raises while failures[0] > 0 (counting down), after its insert."""

    class Flaky(acidic_job.Workflow, database=db, name=name, **options):
        @acidic_job.step
        def charge(self, tx: acidic_job.Cursor) -> None:
            tx.execute(f"INSERT INTO step_rows (order_id, step) VALUES ({ph}, {ph})",
                       (1, "charge"))
            if failures[0] > 0:
                failures[0] -= 1
                raise RuntimeError(f"the card was declined ({failures[0]} more)")

    return Flaky


def test_a_failed_run_is_retried_when_due_until_it_succeeds(dbenv: Any,
                                                            recorder: RecordingAdapter) -> None:
    env = dbenv
    env.table("step_rows", "order_id INTEGER, step TEXT")
    failures = [2]
    Flaky = flaky_workflow(env.db, env.ph, "Retried", failures, retry_base=0.2)
    database = Flaky.__acidic_workflow__.database
    with acidic_job.recoverable(recorder.name), pytest.raises(RuntimeError):
        Flaky.run(key="retried")
    assert acidic_job.recover(database).requeued == 0  # its retry is not due yet
    time.sleep(0.3)                                    # retry_base
    assert acidic_job.recover(database) == acidic_job.Recovered(1, 0)
    [result] = recorder.perform(database)
    assert isinstance(result, RuntimeError)            # the second attempt failed too
    time.sleep(0.5)                                    # twice retry_base now
    assert acidic_job.recover(database) == acidic_job.Recovered(1, 0)
    assert recorder.perform(database) == [True]
    assert env.sql("SELECT count(*) FROM step_rows")[0][0] == 1  # failed attempts rolled back
    row = env.sql("SELECT recovery_point, attempts, error_object FROM acidic_job_keys")[0]
    assert row == ("FINISHED", 3, None)


def test_a_run_failing_every_time_is_dead_after_max_attempts(dbenv: Any,
                                                             recorder: RecordingAdapter) -> None:
    env = dbenv
    env.table("step_rows", "order_id INTEGER, step TEXT")
    failures = [1000]
    Doomed = flaky_workflow(env.db, env.ph, "Doomed", failures, max_attempts=3,
                            retry_base=0.05)
    database = Doomed.__acidic_workflow__.database
    with acidic_job.recoverable(recorder.name), pytest.raises(RuntimeError):
        Doomed.run(key="doomed")
    for _ in range(2):
        time.sleep(0.25)
        assert acidic_job.recover(database) == acidic_job.Recovered(1, 0)
        [result] = recorder.perform(database)
        assert isinstance(result, RuntimeError)
    assert failures[0] == 997   # three attempts ran
    row = env.sql("SELECT attempts, dead_at, locked_at, error_object, recover_at "
                  "FROM acidic_job_keys")[0]
    attempts, dead_at, locked_at, error, recover_at = row
    assert attempts == 3 and dead_at is not None and locked_at is None
    assert recover_at is None
    assert "builtins.RuntimeError" in error and "declined (997 more)" in error
    time.sleep(0.25)
    assert acidic_job.recover(database) == acidic_job.Recovered(0, 0)  # dead: left alone
    with pytest.raises(acidic_job.DeadRun, match="failed 3 times"):
        Doomed.run(key="doomed")
    assert failures[0] == 997
    assert env.sql("SELECT count(*) FROM step_rows")[0][0] == 0


def test_a_run_started_outside_a_queue_is_not_recovered(dbenv: Any,
                                                        recorder: RecordingAdapter) -> None:
    env = dbenv
    env.table("step_rows", "order_id INTEGER, step TEXT")
    Flaky = flaky_workflow(env.db, env.ph, "Direct", [1], retry_base=0)
    with pytest.raises(RuntimeError):
        Flaky.run(key="direct")
    time.sleep(0.05)
    assert acidic_job.recover(Flaky.__acidic_workflow__.database) == acidic_job.Recovered(0, 0)
    assert recorder.sent == []
    # a rerun under a queue records how to resume it from then on
    with acidic_job.recoverable(recorder.name):
        assert Flaky.run(key="direct") is True


def test_the_recover_command(sqlite_env: Any, tmp_path: Any) -> None:
    env = sqlite_env
    out = subprocess.run([sys.executable, "-m", "acidic_job", "recover", "--url", env.url],
                         capture_output=True, text=True, cwd=HERE, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "requeued 0 run(s), 0 dead" in out.stdout
    missing = subprocess.run([sys.executable, "-m", "acidic_job", "recover", "--url",
                              f"sqlite:{tmp_path}/nowhere.db"], capture_output=True,
                             text=True, cwd=HERE, timeout=120)
    assert missing.returncode == 1 and "no SQLite database" in missing.stderr
    assert not os.path.exists(tmp_path / "nowhere.db")
