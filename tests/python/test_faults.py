"""Faults and misuse from issue 9, through the Python package, on real servers.

A PostgreSQL restarted under a borrowed connection from a factory, psycopg deallocating
and a pooler discarding the session, two connections creating one key, a busy SQLite
file, garbage in a run's row, a key of another job, huge timeouts, and 1 MB and 50 MB
arguments.
"""
from __future__ import annotations

import base64
import os
import sqlite3
import threading
import time
import uuid
from typing import Any, Dict, List

import pytest

import acidic_job
from acidic_job import _native



def three_steps(db: Any, ph: str, name: str, **options: Any) -> Any:
    """Three steps, each inserting one row (label, step) into step_rows."""

    class ThreeSteps(acidic_job.Workflow, database=db, name=name, **options):
        def __init__(self, label: str) -> None:
            self.label = label

        @acidic_job.step
        def a(self, tx: acidic_job.Cursor) -> None:
            tx.execute(f"INSERT INTO step_rows (label, step) VALUES ({ph}, {ph})",
                       (self.label, "a"))

        @acidic_job.step
        def b(self, tx: acidic_job.Cursor) -> None:
            tx.execute(f"INSERT INTO step_rows (label, step) VALUES ({ph}, {ph})",
                       (self.label, "b"))

        @acidic_job.step
        def c(self, tx: acidic_job.Cursor) -> None:
            tx.execute(f"INSERT INTO step_rows (label, step) VALUES ({ph}, {ph})",
                       (self.label, "c"))

    return ThreeSteps


def steps_of(env: Any, label: str) -> List[str]:
    return sorted(r[0] for r in env.sql("SELECT step FROM step_rows WHERE label = ?", (label,)))


# --- a PostgreSQL restart under a factory of borrowed connections ----------------------

class Restartable:
    """A schema on the module's own server, and connections to it."""

    def __init__(self, server: Any, kind: str) -> None:
        import psycopg
        self.server, self.kind = server, kind
        self.schema = "r_" + uuid.uuid4().hex[:10]
        with psycopg.connect(server.url, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {self.schema}")
            admin.execute(f"CREATE TABLE {self.schema}.step_rows (label text, step text)")
        sep = "&" if "?" in server.url else "?"
        self.url = f"{server.url}{sep}options=-csearch_path%3D{self.schema}"
        self.made: List[Any] = []

    def connect(self) -> Any:
        if self.kind == "psycopg":
            import psycopg
            conn: Any = psycopg.connect(self.url)
        else:
            import psycopg2
            conn = psycopg2.connect(self.url)
        self.made.append(conn)
        return conn

    def sql(self, text: str, params: Any = ()) -> List[Any]:
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(text.replace("?", "%s"), params or None)
            return cur.fetchall() if cur.description else []


@pytest.mark.parametrize("mode", ["immediate", "fast"])
@pytest.mark.parametrize("kind", ["psycopg", "psycopg2"])
def test_a_factory_is_asked_again_for_a_connection_the_restart_broke(own_pg: Any, kind: str,
                                                                       mode: str) -> None:
    db = Restartable(own_pg, kind)
    wf = three_steps(db.connect, "%s", f"Restart{kind}{mode}")
    assert wf.run("before") is True
    made = len(db.made)
    own_pg.restart(mode)
    errors: List[BaseException] = []
    for n in range(3):
        try:
            assert wf.run(f"after-{n}") is True
        except acidic_job.Error as exc:
            errors.append(exc)
    # The run that meets the dead connection fails as a lost connection (not a misuse),
    # having written nothing; the factory then gives a new connection and the rest run.
    assert len(errors) <= 1, errors
    for exc in errors:
        assert isinstance(exc, acidic_job.DatabaseError) and \
            not isinstance(exc, acidic_job.MisuseError), repr(exc)
        assert "connection" in str(exc), str(exc)
    assert len(db.made) == made + 1
    ran = [r[0] for r in db.sql("SELECT label FROM step_rows WHERE step = 'c'")]
    assert sorted(ran) == sorted(["before"] + [f"after-{n}" for n in range(3)][len(errors):])
    # no step twice, nothing left locked
    assert db.sql("SELECT label, step, count(*) FROM step_rows GROUP BY label, step "
                  "HAVING count(*) > 1") == []
    assert db.sql("SELECT count(*) FROM acidic_job_keys WHERE locked_at IS NOT NULL") == [(0,)]
    if errors:  # the failed run is retried by running it again
        assert wf.run("after-0") is True


def test_a_url_store_reconnects_after_an_immediate_restart(own_pg: Any) -> None:
    db = Restartable(own_pg, "psycopg")
    wf = three_steps(db.url, "?", "RestartUrl")
    assert wf.run("before") is True
    own_pg.restart("immediate")
    outcomes = []
    for n in range(3):
        try:
            outcomes.append(wf.run(f"after-{n}"))
        except acidic_job.DatabaseError as exc:
            outcomes.append(type(exc).__name__)
    assert outcomes[1:] == [True, True], outcomes
    assert db.sql("SELECT count(*) FROM acidic_job_keys WHERE locked_at IS NOT NULL") == [(0,)]


# --- psycopg's DEALLOCATE ALL and a pooler's DISCARD ALL ----------------------------------

def core_statements(conn: Any) -> List[str]:
    """The core's named prepared statements in this session (it prepares its statements
    once per session, and again after they were deallocated)."""
    return [r[0] for r in conn.execute("SELECT name FROM pg_prepared_statements "
                                       "WHERE name LIKE 'aj%'", prepare=False).fetchall()]


def pooled_workflow(conn: Any, fail: Dict[str, str]) -> Any:
    class Pooled(acidic_job.Workflow, database=conn, name="Pooled"):
        def __init__(self, label: str) -> None:
            self.label = label

        @acidic_job.step
        def a(self, tx: acidic_job.Cursor) -> None:
            tx.execute("INSERT INTO step_rows (label, step) VALUES (%s, %s)", (self.label, "a"))

        @acidic_job.step
        def b(self, tx: acidic_job.Cursor) -> None:
            tx.execute("INSERT INTO step_rows (label, step) VALUES (%s, %s)", (self.label, "b"))
            if fail.get("label") == self.label:
                raise RuntimeError("b fails after psycopg prepared the insert")

        @acidic_job.step
        def c(self, tx: acidic_job.Cursor) -> None:
            tx.execute("INSERT INTO step_rows (label, step) VALUES (%s, %s)", (self.label, "c"))

    return Pooled


def autocommit_psycopg(env: Any) -> Any:
    """psycopg 3 prepares and deallocates on its own; DISCARD ALL needs autocommit."""
    import psycopg
    env.table("step_rows", "label text, step text")
    return psycopg.connect(env.url, autocommit=True)


def test_a_pooler_discarding_the_session_between_and_inside_runs(psycopg_env: Any) -> None:
    pg_env = psycopg_env
    conn = autocommit_psycopg(pg_env)
    conn.prepare_threshold = None  # what a transaction pooler needs of psycopg
    Pooled = pooled_workflow(conn, {})
    discarded: List[str] = []

    @acidic_job.add_step_hook
    def discard_between_steps(trace: acidic_job.StepTrace) -> None:
        # inside a run: after step a committed, before step b begins
        if trace.phase == "end" and trace.outcome == "committed" and trace.step == "a":
            conn.execute("DISCARD ALL")
            discarded.append(trace.key)

    try:
        assert Pooled.run("one") is True
        conn.execute("DISCARD ALL")                       # between runs
        assert core_statements(conn) == []
        assert Pooled.run("two") is True
        assert core_statements(conn)                      # prepared again, nothing failed
    finally:
        acidic_job.remove_step_hook(discard_between_steps)
        conn.close()
    assert len(discarded) == 2
    for label in ("one", "two"):
        assert steps_of(pg_env, label) == ["a", "b", "c"], label


def test_a_failing_step_after_psycopg_prepared_its_queries(psycopg_env: Any) -> None:
    """psycopg prepares the application's queries (here at once) and answers the rollback
    of a failed step with DEALLOCATE ALL; the core then records the failure on the same
    connection, and the run resumes afterwards."""
    pg_env = psycopg_env
    conn = autocommit_psycopg(pg_env)
    conn.prepare_threshold = 0
    fail: Dict[str, str] = {}
    Pooled = pooled_workflow(conn, fail)
    try:
        assert Pooled.run("warm") is True
        prepared = conn.execute("SELECT name FROM pg_prepared_statements").fetchall()
        assert any(name.startswith("_pg3_") for (name,) in prepared), prepared
        fail["label"] = "three"
        with pytest.raises(RuntimeError, match="after psycopg prepared"):
            Pooled.run("three")
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE"
                            " '\\_pg3\\_%'", prepare=False).fetchone()[0] == 0  # psycopg's DEALLOCATE ALL
        row = pg_env.sql("SELECT locked_at, error_object, recovery_point FROM acidic_job_keys "
                         "WHERE job_args LIKE ?", ('%"three"%',))
        assert row[0][0] is None and "RuntimeError" in row[0][1] and row[0][2] == "b", row
        fail.clear()
        assert Pooled.run("three") is True
        assert core_statements(conn)
    finally:
        conn.close()
    assert steps_of(pg_env, "three") == ["a", "b", "c"]


# --- two connections creating one key ------------------------------------------------------

def test_two_borrowed_connections_creating_one_key(borrowed_env: Any) -> None:
    """Both run the same new key; the second waits for the first's first step, then finds
    the run locked: LockedIdempotencyKey, never a unique violation, and the step ran
    once."""
    env = borrowed_env
    env.table("step_rows", "label TEXT, step TEXT")
    inside, release, second_done = threading.Event(), threading.Event(), threading.Event()
    ph = env.ph

    def conn() -> Any:
        if env.kind == "sqlite3":
            return sqlite3.connect(env.path, timeout=30, check_same_thread=False)
        return env.make_db()

    def racer(db: Any) -> Any:
        class Racing(acidic_job.Workflow, database=db, name="Racing"):
            @acidic_job.step
            def a(self, tx: acidic_job.Cursor) -> None:
                tx.execute(f"INSERT INTO step_rows (label, step) VALUES ({ph}, {ph})",
                           ("race", "a"))
                inside.set()
                release.wait(30)

            @acidic_job.step
            def b(self) -> None:
                second_done.wait(30)  # still running (locked) when the second decides
        return Racing

    first, second = racer(conn()), racer(conn())
    outcome: List[Any] = []
    t = threading.Thread(target=lambda: outcome.append(first.run(key="one-key")))
    t.start()
    try:
        assert inside.wait(30)
        box: List[BaseException] = []
        def run_second() -> None:
            _catch(box, second.run, key="one-key")
            second_done.set()

        t2 = threading.Thread(target=run_second)
        t2.start()
        time.sleep(0.5)   # the second is waiting (advisory lock / SQLite's write lock)
    finally:
        release.set()
    t.join(60)
    t2.join(60)
    assert outcome == [True]
    assert len(box) == 1 and isinstance(box[0], acidic_job.LockedIdempotencyKey), box
    assert steps_of(env, "race") == ["a"]


def _catch(box: List[BaseException], fn: Any, **kwargs: Any) -> None:
    try:
        fn(**kwargs)
    except BaseException as exc:  # noqa: B902 - judged by the test
        box.append(exc)


def test_a_key_created_by_a_transaction_that_commits_meanwhile_is_locked(pg_env: Any) -> None:
    """Another process inserted the key without the core's advisory lock (0.7.0, a
    hand-written insert) in a transaction still open: this run's insert waits on the
    unique index, and when that commits, its unique violation means another worker
    created the run: LockedIdempotencyKey."""
    import psycopg
    pg_env.table("step_rows", "label text, step text")
    wf = three_steps(pg_env.db, pg_env.ph, "Rival")
    assert wf.run("setup") is True  # the tables exist
    rival = psycopg.connect(pg_env.url)
    rival.execute("INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, "
                  "last_run_at, locked_at, recovery_point, attr_accessors, created_at, "
                  "updated_at) VALUES ('rival', 'Rival', %s, now(), now(), 'a', '{}', now(), "
                  "now())", ('{"label":"x"}',))
    box: List[BaseException] = []
    t = threading.Thread(target=lambda: _catch(box, wf.run, label="x", key="rival"))
    t.start()
    time.sleep(0.5)
    rival.commit()
    t.join(60)
    rival.close()
    assert len(box) == 1 and isinstance(box[0], acidic_job.LockedIdempotencyKey), box
    assert "23505" not in str(box[0]) and "duplicate key" not in str(box[0])
    assert steps_of(pg_env, "x") == []


# --- a busy SQLite file through a borrowed sqlite3 connection -------------------------------

@pytest.mark.parametrize("writes", [True, False], ids=["step-writes", "step-reads"])
def test_a_busy_borrowed_sqlite_file_is_an_acidic_job_error_saying_one_writer(
        tmp_path: Any, writes: bool) -> None:
    path = str(tmp_path / "busy.db")
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE log (n INTEGER)")
    conn = sqlite3.connect(path, timeout=0.1)

    class Busy(acidic_job.Workflow, database=conn, name="Busy", busy_timeout=0.1):
        def __init__(self, n: int) -> None:
            self.n = n

        @acidic_job.step
        def only(self, tx: acidic_job.Cursor) -> None:
            if writes:
                tx.execute("INSERT INTO log (n) VALUES (?)", (self.n,))
            else:
                tx.execute("SELECT count(*) FROM log")

    assert Busy.run(0) is True
    setup.execute("BEGIN IMMEDIATE")  # another writer holds the write lock
    try:
        with pytest.raises(acidic_job.Error) as info:
            Busy.run(1)
    finally:
        setup.execute("ROLLBACK")
    exc = info.value
    assert isinstance(exc, acidic_job.SerializationConflict), repr(exc)
    assert not isinstance(exc, sqlite3.Error)
    assert "one writer" in str(exc), str(exc)
    assert not conn.in_transaction
    assert Busy.run(1) is True  # the writer is gone: the run goes through
    assert setup.execute("SELECT n FROM log ORDER BY n").fetchall() == \
        ([(0,), (1,)] if writes else [])


# --- a run's row holding what cannot be decoded ---------------------------------------------

@pytest.mark.parametrize("garbage", ["not json {", "[1, 2]"])
def test_undecodable_attributes_unlock_the_run_and_name_it_and_the_column(
        dbenv: Any, garbage: str) -> None:
    dbenv.table("step_rows", "label TEXT, step TEXT")
    ph = dbenv.ph
    fail = [True]

    class Counting(acidic_job.Workflow, database=dbenv.db, name="Counting"):
        count: int = 0

        @acidic_job.step
        def a(self, tx: acidic_job.Cursor) -> None:
            self.count += 1
            tx.execute(f"INSERT INTO step_rows (label, step) VALUES ({ph}, {ph})", ("g", "a"))

        @acidic_job.step
        def b(self, tx: acidic_job.Cursor) -> None:
            if fail[0]:
                raise RuntimeError("stop after a")
            tx.execute(f"INSERT INTO step_rows (label, step) VALUES ({ph}, {ph})", ("g", "b"))

    with pytest.raises(RuntimeError):
        Counting.run(key="garbled")
    dbenv.sql("UPDATE acidic_job_keys SET attr_accessors = ?", (garbage,))
    with pytest.raises(acidic_job.DecodeError) as info:
        Counting.run(key="garbled")
    message = str(info.value)
    assert "attr_accessors" in message and "'garbled'" in message and "Counting" in message
    row = dbenv.key_row()
    assert row["locked_at"] is None                       # released at once
    assert "acidic_job.errors.DecodeError" in row["error_object"]
    assert row["recovery_point"] == "b"
    dbenv.sql("UPDATE acidic_job_keys SET attr_accessors = ?", ('{"count": 1}',))
    fail[0] = False
    assert Counting.run(key="garbled") is True
    assert steps_of(dbenv, "g") == ["a", "b"]


# --- a key of another job ---------------------------------------------------------------

def test_a_key_reused_by_another_workflow_names_both_jobs(dbenv: Any) -> None:
    ran: List[str] = []

    class Alpha(acidic_job.Workflow, database=dbenv.db, name="AlphaJob"):
        @acidic_job.step
        def only(self) -> None:
            ran.append("alpha")

    class Bravo(acidic_job.Workflow, database=dbenv.db, name="BravoJob"):
        @acidic_job.step
        def only(self) -> None:
            ran.append("bravo")

    assert Alpha.run(key="shared") is True
    with pytest.raises(acidic_job.MismatchedIdempotencyKeyAndJobArguments) as info:
        Bravo.run(key="shared")
    assert "AlphaJob" in str(info.value) and "BravoJob" in str(info.value)
    assert ran == ["alpha"]
    assert dbenv.keys_count() == 1


# --- huge timeouts ----------------------------------------------------------------------

#: the core's longest duration ("never"): 100 years of 366 days, in ms
NEVER_MS = 100 * 366 * 24 * 3600 * 1000


@pytest.mark.parametrize("seconds", [2 ** 63 / 1e6, 9.2e15, 1e300, float("inf")])
def test_a_huge_lock_timeout_clamps_and_a_locked_run_stays_locked(dbenv: Any,
                                                                   seconds: float) -> None:
    class Held(acidic_job.Workflow, database=dbenv.db, name="Held", lock_timeout=seconds):
        @acidic_job.step
        def only(self) -> None:
            pass

    spec = Held.__acidic_workflow__
    store = spec.database.current().store()
    assert store.options["lock_timeout_ms"] == NEVER_MS
    holder_store = _native.open(dbenv.url, lock_timeout_ms=spec.database.options[
        "lock_timeout_ms"])
    holder = _native.acquire(holder_store, spec.native, "held", spec.name, "{}", "{}")
    try:
        with pytest.raises(acidic_job.LockedIdempotencyKey):
            Held.run(key="held")
    finally:
        holder.close()
        holder_store.close()


def test_a_huge_drain_age_clamps(dbenv: Any) -> None:
    class Nothing(acidic_job.Workflow, database=dbenv.db, name="Nothing"):
        @acidic_job.step
        def only(self) -> None:
            pass

    assert Nothing.run() is True
    assert acidic_job.drain(Nothing.__acidic_workflow__.database, older_than=float("inf")) == 0
    assert acidic_job.drain(Nothing.__acidic_workflow__.database, older_than=1e300) == 0


# --- large arguments ----------------------------------------------------------------------

def incompressible(n: int) -> str:
    return base64.b64encode(os.urandom(n * 3 // 4 + 3)).decode()[:n]


SIZES = [1 << 20] + ([] if os.environ.get("AJ_TEST_PART_PREFIX") else [50 << 20])


@pytest.mark.parametrize("size", SIZES, ids=lambda n: f"{n >> 20}MB")
def test_large_arguments(dbenv: Any, size: int) -> None:
    dbenv.table("step_rows", "label TEXT, step TEXT")
    big = incompressible(size)
    wf = three_steps(dbenv.db, dbenv.ph, "Large")
    assert wf.run(big) is True
    assert wf.run(big) is True             # the finished run, found by its arguments
    with pytest.raises(acidic_job.MismatchedIdempotencyKeyAndJobArguments):
        wf.run(big[:-1] + ("A" if big[-1] != "A" else "B"),
               key=dbenv.sql("SELECT idempotency_key FROM acidic_job_keys")[0][0])
    assert dbenv.sql("SELECT length(job_args) FROM acidic_job_keys")[0][0] >= size
    assert dbenv.sql("SELECT count(*) FROM step_rows WHERE step = 'c'")[0][0] == 1


# --- the error documents of failures the core detects -------------------------------------

def test_a_failure_the_core_detects_is_recorded_as_the_python_error_document(dbenv: Any
                                                                           ) -> None:
    """An unknown recovery point (a step renamed while a run was failed at it) is the
    core's finding: it records it through the layer's error encoder, as the class it is
    raised as, and releases the lock."""
    import json
    fail = [True]

    def define(second: str) -> Any:
        def first(self: Any) -> None:
            pass

        def other(self: Any) -> None:
            if fail[0]:
                raise RuntimeError("stop at the second step")
        other.__name__ = second
        namespace = {"first": acidic_job.step(first), second: acidic_job.step(other)}
        return acidic_job.workflow(dbenv.db, name="Renamed")(type("Renamed", (), namespace))

    with pytest.raises(RuntimeError):
        define("old_name").run(key="renamed")
    with pytest.raises(acidic_job.UnknownRecoveryPoint) as info:
        define("new_name").run(key="renamed")
    row = dbenv.key_row()
    assert row["locked_at"] is None and row["recovery_point"] == "old_name"
    doc = json.loads(row["error_object"])
    assert doc["class"] == "acidic_job.errors.UnknownRecoveryPoint"
    assert "old_name" in doc["message"] and "old_name" in str(info.value)
    fail[0] = False
    assert define("old_name").run(key="renamed") is True
