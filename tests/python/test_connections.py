"""Borrowed connections, host transactions, threads, fork and a process killed mid-step."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any, List

import pytest

import acidic_job
import killable

HERE = os.path.dirname(os.path.abspath(__file__))


def counter_workflow(db: Any, ph: str, name: str, calls: List[Any], fail: List[bool]) -> Any:
    @acidic_job.workflow(db, name=name)
    class Counter:
        def __init__(self, n: int) -> None:
            self.n = n

        @acidic_job.step
        def write(self, tx: Any) -> None:
            calls.append(self.n)
            tx.execute(f"INSERT INTO log (n) VALUES ({ph})", (self.n,))
            if fail and fail[0]:
                raise ValueError("fail on purpose")

    return Counter


def test_an_open_transaction_on_a_borrowed_connection_is_refused(borrowed_env: Any) -> None:
    env = borrowed_env
    env.table("log", "n INTEGER")
    conn = env.db
    calls: List[Any] = []
    Counter = counter_workflow(conn, env.ph, "Open", calls, [])
    cur = conn.cursor()
    cur.execute(f"INSERT INTO log (n) VALUES ({env.ph})", (99,))  # opens a transaction
    with pytest.raises(acidic_job.MisuseError, match="open transaction"):
        Counter.run(1)
    assert calls == []
    conn.rollback()
    assert env.keys_count() == 0
    assert env.sql("SELECT count(*) FROM log")[0][0] == 0
    assert Counter.run(1) is True  # once committed/rolled back, it works
    assert env.sql("SELECT n FROM log") == [(1,)]


def test_autocommit_connections_get_a_real_transaction_per_step(borrowed_env: Any) -> None:
    env = borrowed_env
    env.table("log", "n INTEGER")
    if env.kind == "sqlite3":
        import sqlite3
        conn = sqlite3.connect(env.path, isolation_level=None)
    elif env.kind == "psycopg":
        import psycopg
        conn = psycopg.connect(env.url, autocommit=True)
    else:
        import psycopg2
        conn = psycopg2.connect(env.url)
        conn.autocommit = True
    calls: List[Any] = []
    fail = [True]
    Counter = counter_workflow(conn, env.ph, "Auto", calls, fail)
    with pytest.raises(ValueError, match="on purpose"):
        Counter.run(1)
    assert env.sql("SELECT count(*) FROM log")[0][0] == 0  # rolled back, not autocommitted
    fail[0] = False
    assert Counter.run(1) is True
    assert env.sql("SELECT n FROM log") == [(1,)]
    assert env.key_row()["recovery_point"] == "FINISHED"
    conn.close()


def test_a_closed_connection_is_refused(borrowed_env: Any) -> None:
    env = borrowed_env
    conn = env.make_db()
    conn.close()
    with pytest.raises((acidic_job.MisuseError, acidic_job.DatabaseError)):
        counter_workflow(conn, env.ph, "Closed", [], []).run(1)


def test_runs_from_many_threads(dbenv: Any) -> None:
    """URL databases open one connection per thread; a borrowed connection is shared
    and its runs are serialised (sqlite3 needs check_same_thread=False for that)."""
    env = dbenv
    env.table("log", "n INTEGER")
    if env.kind == "sqlite3":
        import sqlite3
        db: Any = sqlite3.connect(env.path, check_same_thread=False)
    else:
        db = env.db
    calls: List[Any] = []
    Counter = counter_workflow(db, env.ph, "Threads", calls, [])
    errors: List[BaseException] = []

    def worker(base: int) -> None:
        try:
            for i in range(5):
                assert Counter.run(base + i) is True
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(100 * t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sorted(r[0] for r in env.sql("SELECT n FROM log")) == sorted(
        100 * t + i for t in range(4) for i in range(5))
    assert env.keys_count() == 20


def test_the_gil_is_released_while_the_core_waits_on_the_database(pg_url_env: Any) -> None:
    """A step's SQL on a URL store blocks on a row lock held by this thread's own
    connection: only if the extension released the GIL can this thread see the wait
    and release the lock (otherwise the join below times out)."""
    import psycopg
    env = pg_url_env
    env.table("counters", "id INTEGER PRIMARY KEY, n INTEGER")
    env.sql("INSERT INTO counters VALUES (1, 0)")

    @acidic_job.workflow(env.db, name="Gil")
    class Gil:
        @acidic_job.step
        def bump(self, tx: Any) -> None:
            tx.execute("UPDATE counters SET n = n + 1 WHERE id = 1")

    holder = psycopg.connect(env.url)
    holder.execute("SELECT n FROM counters WHERE id = 1 FOR UPDATE")
    result: List[Any] = []
    t = threading.Thread(target=lambda: result.append(Gil.run()))
    t.start()
    waiting = 0
    try:
        for _ in range(100000):
            waiting = env.sql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                              "'Lock' AND query LIKE 'UPDATE counters%'")[0][0]
            if waiting or not t.is_alive():
                break
    finally:
        holder.commit()
    assert waiting == 1
    t.join(60)
    assert result == [True]
    assert env.sql("SELECT n FROM counters") == [(1,)]
    holder.close()


def _fork_and_run(fn: Any) -> int:
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            code = fn()
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_fork_reopens_url_stores_and_never_touches_a_borrowed_connection(dbenv: Any) -> None:
    env = dbenv
    env.table("log", "n INTEGER")
    calls: List[Any] = []
    Counter = counter_workflow(env.db, env.ph, "Fork", calls, [])
    assert Counter.run(1) is True  # the store now exists in the parent

    def child() -> int:
        if env.borrowed:
            try:
                Counter.run(2)
            except acidic_job.MisuseError as exc:
                return 0 if "fork" in str(exc) else 3
            return 2
        return 0 if Counter.run(2) is True else 4

    assert _fork_and_run(child) == 0
    # the parent's connection is intact
    assert Counter.run(3) is True
    expected = [1, 3] if env.borrowed else [1, 2, 3]
    assert sorted(r[0] for r in env.sql("SELECT n FROM log")) == expected


def test_a_connection_factory_gives_the_child_its_own_connection(borrowed_env: Any) -> None:
    env = borrowed_env
    env.table("log", "n INTEGER")
    Counter = counter_workflow(env.make_db, env.ph, "Factory", [], [])
    assert Counter.run(1) is True
    assert _fork_and_run(lambda: 0 if Counter.run(2) is True else 5) == 0
    assert Counter.run(3) is True
    assert sorted(r[0] for r in env.sql("SELECT n FROM log")) == [1, 2, 3]


def test_a_process_killed_in_the_middle_of_a_step_leaves_its_rows_once(dbenv: Any) -> None:
    env = dbenv
    env.table("step_rows", "order_id INTEGER, step TEXT")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "killable.py"), env.kind, env.url],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.strip() == "IN_STEP"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # the killed step's insert was never committed; the run is still locked
    assert env.sql("SELECT step FROM step_rows") == [("reserve",)]
    row = env.key_row("Killable")
    assert row["recovery_point"] == "ship" and row["locked_at"] is not None
    with pytest.raises(acidic_job.LockedIdempotencyKey):
        killable.make(env.db, env.ph, block=False).run(7)
    # after the lock timeout (0 here), a rerun resumes at the killed step
    assert killable.make(env.make_db(), env.ph, block=False, lock_timeout=0).run(7) is True
    assert sorted(env.sql("SELECT step FROM step_rows")) == [("reserve",), ("ship",)]
    assert env.key_row("Killable")["recovery_point"] == "FINISHED"


def test_a_store_busy_in_one_thread_is_refused_to_another(dbenv: Any) -> None:
    """The native guard: while a step runs in thread A, thread B using the same native
    store gets MisuseError instead of sharing the connection mid-transaction."""
    env = dbenv
    env.table("log", "n INTEGER")
    inside, release = threading.Event(), threading.Event()
    box: List[Any] = []
    db = env.db
    if env.kind == "sqlite3":
        import sqlite3
        db = sqlite3.connect(env.path, check_same_thread=False)

    @acidic_job.workflow(db, name="Busy")
    class Busy:
        @acidic_job.step
        def only(self, tx: Any) -> None:
            box.append(acidic_job.current_step().store)  # type: ignore[union-attr]
            inside.set()
            release.wait(60)

    def target() -> None:
        try:
            box.append(Busy.run())
        finally:
            inside.set()

    t = threading.Thread(target=target)
    t.start()
    try:
        assert inside.wait(60)
        store = box[0]
        with pytest.raises(acidic_job.MisuseError, match="another thread"):
            store.exec("SELECT 1")
    finally:
        release.set()
        t.join(60)
    assert box[1] is True
    assert store.exec("SELECT 1") == [(1,)] or env.borrowed


def test_a_step_that_commits_the_borrowed_connection_is_refused(borrowed_env: Any) -> None:
    env = borrowed_env
    env.table("log", "n INTEGER")
    conn = env.db

    @acidic_job.workflow(conn, name="SelfCommit")
    class SelfCommit:
        @acidic_job.step
        def only(self, tx: Any) -> None:
            tx.execute(f"INSERT INTO log (n) VALUES ({env.ph})", (1,))
            conn.commit()

    with pytest.raises(acidic_job.MisuseError, match="ended its transaction itself"):
        SelfCommit.run()
    # what the premature commit made durable cannot be undone (the step's rows and the
    # run's progress it carried); the misuse is reported where it happened


def test_psycopg_steps_cost_the_round_trips_of_plain_transactions(psycopg_env: Any,
                                                                    tmp_path: Any) -> None:
    """On psycopg 3 the core's first statements of a step carry its BEGIN and its last
    ones its COMMIT (aj_host_tx's begin_in_body and commit_in_body): a new 3-step run
    costs the plain job's 3 x (BEGIN, INSERT, COMMIT) round trips. Counted from libpq's
    protocol trace: every round trip ends with a frontend Sync or a simple Query."""
    from psycopg import pq
    env = psycopg_env
    env.table("log", "n INTEGER")
    conn = env.db

    @acidic_job.workflow(conn, name="ThreeInserts")
    class ThreeInserts:
        @acidic_job.step
        def a(self, tx: Any) -> None:
            tx.execute("INSERT INTO log (n) VALUES (%s)", (1,))

        @acidic_job.step
        def b(self, tx: Any) -> None:
            tx.execute("INSERT INTO log (n) VALUES (%s)", (2,))

        @acidic_job.step
        def c(self, tx: Any) -> None:
            tx.execute("INSERT INTO log (n) VALUES (%s)", (3,))

    assert ThreeInserts.run(key="warm") is True  # the tables, the prepared statements

    def round_trips(job: Any) -> int:
        path = tmp_path / "trace.txt"
        with open(path, "w") as f:
            conn.pgconn.trace(f.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                assert job() is True
            finally:
                conn.pgconn.untrace()
        lines = path.read_text().splitlines()
        return sum(1 for line in lines
                   if line.startswith("F\t") and line.split("\t")[2].startswith(("Sync", "Query")))

    def plain() -> bool:
        cur = conn.cursor()
        for n in (1, 2, 3):
            with conn.transaction():
                cur.execute("INSERT INTO log (n) VALUES (%s)", (n,))
        return True

    for _ in range(3):  # past psycopg's prepare_threshold: its statement is prepared
        plain()
    baseline = round_trips(plain)
    assert baseline == 9
    assert round_trips(lambda: ThreeInserts.run(key="counted")) == baseline
    assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE  # nothing left open
    assert env.sql("SELECT count(*) FROM log")[0][0] == 3 + 4 * 3 + 3
    rows = env.sql("SELECT recovery_point FROM acidic_job_keys WHERE idempotency_key = 'counted'")
    assert rows == [("FINISHED",)]
