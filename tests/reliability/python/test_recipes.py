"""The defect recipes of issue 9 (sections 2 to 5) through the Python package.

Each test asserts the behaviour the issue asks for: it fails while the defect is there and
passes once the core (or the binding) is fixed. The section of the issue is in each name's
docstring.
"""
from __future__ import annotations

import base64
import os
import warnings
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Tuple

import pytest

import acidic_job
from acidic_job import _native, adapters

from conftest import restart_pg

SECRET_CASES = [
    ("postgresql://user:Secr/et9x@127.0.0.1:1/db?connect_timeout=1", ["Secr", "et9x"]),
    ("postgres://app:Pass/Word5@127.0.0.1:1/db", ["Pass", "Word5"]),
    ("host=127.0.0.1 port=1 connect_timeout=1 passwd=Hunter2x", ["Hunter2x"]),
    ("host=127.0.0.1 port=1 connect_timeout=1 PASSWORD=Hunter3x", ["Hunter3x"]),
    ("host=/x\vpassword=Hunter2://x:Secret9@y", ["Hunter2", "Secret9"]),
    ("mysql://user:pa?ss9word@h/db", ["ss9word"]),
    ("sqlite3://user:pa#ss8word@h/db", ["ss8word"]),
    ("host=127.0.0.1 port=1 password = 'it''s-secret9'", ["secret9"]),
    ("host=127.0.0.1 port=1 connect_timeout=1 password=abc&secret7 dbname=x", ["secret7"]),
]


# --- a queue adapter of the test: records what it is sent, refuses on request -----------

class RecordingAdapter(adapters.Adapter):
    name = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.sent: List[Tuple[int, str, Dict[str, Any]]] = []

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        self.sent.append((staged_id, job_name, payload))

    def continuation(self) -> str:
        return "resume"


class RecordedJob:
    """A job of the recording adapter, for perform_transactionally."""
    __acidic_job_adapter__ = ("recorder", "recorded_job")


@pytest.fixture
def recorder() -> Any:
    previous = adapters.installed("recorder")
    adapter = adapters.install_adapter(RecordingAdapter())
    yield adapter
    if previous is not None:
        adapters.install_adapter(previous)


def three_steps(db: Any, name: str, **options: Any) -> Any:
    """A workflow of three steps, each writing one app_log row named after it."""
    @acidic_job.workflow(db, name=name, **options)
    class ThreeSteps:
        def __init__(self, n: int) -> None:
            self.n = n

        @acidic_job.step
        def a(self, tx: Any) -> None:
            tx.execute(f"INSERT INTO app_log (tag) VALUES ({PH[0]})", ("a",))

        @acidic_job.step
        def b(self, tx: Any) -> None:
            tx.execute(f"INSERT INTO app_log (tag) VALUES ({PH[0]})", ("b",))

        @acidic_job.step
        def c(self, tx: Any) -> None:
            tx.execute(f"INSERT INTO app_log (tag) VALUES ({PH[0]})", ("c",))
    return ThreeSteps


PH = ["?"]  # the placeholder of the kind under test (set by the tests)


# --- 2.1 an owned PostgreSQL store after the server went away -------------------------------

@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_url_store_reconnects_after_a_shutdown_mid_step(pg_url_db: Any, mode: str) -> None:
    """2.1: after pg_ctl stop -m immediate/fast between two statements of a step, the
    next step on the same URL store succeeds (today: MisuseError "the connection is in
    pipeline mode" until the process restarts)."""
    pg_url_db.app_table()
    restarted = []

    @acidic_job.workflow(pg_url_db.url, name="Restarting")
    class Restarting:
        def __init__(self, n: int) -> None:
            self.n = n

        @acidic_job.step
        def a(self, tx: Any) -> None:
            tx.execute("INSERT INTO app_log (tag) VALUES (?)", ("a",))
            if not restarted:
                restarted.append(1)
                restart_pg(mode)
            tx.execute("INSERT INTO app_log (tag) VALUES (?)", ("a2",))

    with pytest.raises(acidic_job.Error) as first:
        Restarting.run(1)
    print(f"the step that lost the server: {type(first.value).__name__}: {first.value}")
    assert Restarting.run(2) is True  # the next run, on the same store, works
    assert pg_url_db.app_rows("a") == 1 and pg_url_db.app_rows("a2") == 1


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_a_run_that_lost_the_server_resumes_at_once(pg_url_db: Any, mode: str) -> None:
    """2.7: the step that lost its connection leaves the run unlocked with its error, so a
    retry resumes it at once (today: LockedIdempotencyKey until the lock timeout)."""
    pg_url_db.app_table()
    restarted = []

    @acidic_job.workflow(pg_url_db.url, name="LosingServer")
    class LosingServer:
        @acidic_job.step
        def a(self, tx: Any) -> None:
            tx.execute("INSERT INTO app_log (tag) VALUES (?)", ("a",))
            if not restarted:
                restarted.append(1)
                restart_pg(mode)

        @acidic_job.step
        def b(self, tx: Any) -> None:
            tx.execute("INSERT INTO app_log (tag) VALUES (?)", ("b",))

    with pytest.raises(acidic_job.Error):
        LosingServer.run(key="lost")
    for _ in range(2):  # one more failure is allowed while the server comes back
        try:
            assert LosingServer.run(key="lost") is True
            break
        except acidic_job.DatabaseError:
            continue
    else:
        pytest.fail("the run never resumed")
    assert pg_url_db.app_rows("a") == 1 and pg_url_db.app_rows("b") == 1


# --- 2.2 borrowed connections from a factory after a restart -------------------------------

@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_factory_connections_recover_after_a_restart(borrowed_pg_db: Any, mode: str) -> None:
    """2.2: a workflow on a factory of psycopg/psycopg2 connections survives a server
    restart: at most one run fails, then the factory is called again (today: every run
    fails with MisuseError "the connection already has an open transaction")."""
    borrowed_pg_db.app_table()
    PH[0] = "%s"
    calls = []

    def factory() -> Any:
        calls.append(1)
        return borrowed_pg_db.connect()

    wf = three_steps(factory, "FromFactory")
    assert wf.run(1) is True
    restart_pg(mode)
    errors: List[BaseException] = []
    for n in range(2, 5):
        try:
            assert wf.run(n) is True
        except Exception as exc:  # noqa: B902 - judged below
            errors.append(exc)
    assert not [e for e in errors if isinstance(e, acidic_job.MisuseError)], errors
    assert len(errors) <= 1, errors
    assert len(calls) >= 2, "the factory was never called again after the restart"


# --- 2.3 psycopg 3 deallocating the core's prepared statements ------------------------------

def test_psycopg_deallocate_all_after_a_failed_step(psycopg_db: Any) -> None:
    """2.3: psycopg 3 sends DEALLOCATE ALL after a rollback once it has prepared statements
    of its own; the failure record (and every later call) must survive it (today:
    "prepared statement aj_... does not exist (SQLSTATE 26000)", the run stays locked)."""
    psycopg_db.app_table()
    conn = psycopg_db.connect()
    conn.prepare_threshold = 0  # psycopg prepares the application's queries at once
    fail = [True]

    @acidic_job.workflow(conn, name="Prepared")
    class Prepared:
        def __init__(self, n: int) -> None:
            self.n = n

        @acidic_job.step
        def a(self, tx: Any) -> None:
            tx.execute("INSERT INTO app_log (tag) VALUES (%s)", ("a",))
            if fail[0]:
                raise RuntimeError("the step fails once")

        @acidic_job.step
        def b(self, tx: Any) -> None:
            tx.execute("INSERT INTO app_log (tag) VALUES (%s)", ("b",))

    fail[0] = False
    assert Prepared.run(0) is True  # psycopg has prepared its statements by now
    fail[0] = True
    with warnings.catch_warnings(record=True) as warned:  # a lost failure record warns
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError):
            Prepared.run(1, key="prep")
    assert not [w for w in warned if "could not record" in str(w.message)], \
        [str(w.message) for w in warned]
    row = psycopg_db.key("prep")
    assert row["locked_at"] is None and row["error_object"], row
    fail[0] = False
    assert Prepared.run(1, key="prep") is True


def test_psycopg_discard_all_between_runs(psycopg_db: Any) -> None:
    """2.3: a pooler's DISCARD ALL between two runs is survived."""
    psycopg_db.app_table()
    PH[0] = "%s"
    conn = psycopg_db.connect(autocommit=True)
    wf = three_steps(conn, "Discarded")
    assert wf.run(1) is True
    conn.execute("DISCARD ALL")
    assert wf.run(2) is True


# --- 2.4 drains ------------------------------------------------------------------------------

def test_drain_past_a_page_of_refused_rows(db: Any, recorder: Any) -> None:
    """2.4: 100 rows of an adapter this process does not have, then 20 it has: the 20 are
    delivered (today: 0, the drain stops at the first page)."""
    wf = three_steps(db.connect(), "Setup")  # creates the tables
    db.app_table()
    PH[0] = db.ph
    assert wf.run(1) is True
    db.stage_rows("not-installed", 100)
    db.stage_rows("recorder", 20)
    assert acidic_job.drain(wf.__acidic_workflow__.database, older_than=0) == 20
    assert len(recorder.sent) == 20


def test_borrowed_drain_delivers_every_page(borrowed_db: Any, recorder: Any) -> None:
    """2.4: a borrowed store drains every page in one call (today: 100 rows per call)."""
    borrowed_db.app_table()
    PH[0] = borrowed_db.ph
    wf = three_steps(borrowed_db.connect(), "Setup")
    assert wf.run(1) is True
    borrowed_db.stage_rows("recorder", 250)
    assert acidic_job.drain(wf.__acidic_workflow__.database, older_than=0) == 250


# --- 2.5 two borrowed PostgreSQL connections creating one key -------------------------------

def test_racing_creation_is_locked_not_a_unique_violation(borrowed_pg_db: Any) -> None:
    """2.5: another worker has inserted the same key in its open transaction; when it
    commits, this run's INSERT meets the unique index. That is LockedIdempotencyKey (today:
    DatabaseError "duplicate key value violates unique constraint ... (23505)")."""
    borrowed_pg_db.app_table()
    PH[0] = "%s"
    wf = three_steps(borrowed_pg_db.connect(), "Race")
    assert wf.run(0) is True  # the tables exist
    rival = borrowed_pg_db.raw()
    rival.execute(
        "INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at,"
        " locked_at, recovery_point, attr_accessors, created_at, updated_at) VALUES"
        " ('race', 'Race', %s, now(), now(), 'a', '{}', now(), now())", ('{"n":1}',))
    outcome: List[BaseException] = []

    def run() -> None:
        try:
            wf.run(1, key="race")
        except BaseException as exc:  # noqa: B902 - reported below
            outcome.append(exc)

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    rival.commit()
    t.join(30)
    assert outcome, "the run acquired a key another worker holds"
    assert isinstance(outcome[0], acidic_job.LockedIdempotencyKey), repr(outcome[0])


# --- 2.7 a run left locked by errors that are not the step's --------------------------------

def test_unknown_recovery_point_releases_the_lock(db: Any) -> None:
    """2.7: after UnknownRecoveryPoint the lock is released and the error recorded, so the
    run resumes at once when the step is back (today: LockedIdempotencyKey for 90 s)."""
    db.app_table()
    PH[0] = db.ph
    conn = db.connect()
    fail = [True]

    def define(second: str) -> Any:
        def __init__(self: Any, n: int) -> None:
            self.n = n

        def a(self: Any) -> None:
            pass

        def second_step(self: Any) -> None:
            if fail[0]:
                raise RuntimeError("stop here")
        second_step.__name__ = second
        cls = type("Renaming", (), {"__init__": __init__, "a": acidic_job.step(a),
                                    second: acidic_job.step(second_step)})
        return acidic_job.workflow(conn, name="Renaming")(cls)

    old = define("old_name")
    with pytest.raises(RuntimeError):
        old.run(1)
    new = define("new_name")
    with pytest.raises(acidic_job.UnknownRecoveryPoint):
        new.run(1)
    row = db.key(db.sql("SELECT idempotency_key FROM acidic_job_keys")[0][0])
    assert row["locked_at"] is None, row
    assert row["error_object"] and "old_name" in row["error_object"], row
    fail[0] = False
    old = define("old_name")
    assert old.run(1) is True


@pytest.mark.parametrize("bad", ["not json {", "[1, 2]x"])
def test_undecodable_attributes_release_the_lock(db: Any, bad: str) -> None:
    """2.7: an undecodable attr_accessors document raises an acidic_job.Error naming the run
    and the column, and leaves the run unlocked (today: a raw json.JSONDecodeError)."""
    conn = db.connect()
    fail = [True]

    @acidic_job.workflow(conn, name="Attrs")
    class Attrs:
        counter: int = 0

        def __init__(self, n: int) -> None:
            self.n = n

        @acidic_job.step
        def a(self) -> None:
            self.counter += 1

        @acidic_job.step
        def b(self) -> None:
            if fail[0]:
                raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        Attrs.run(1, key="attrs")
    db.sql("UPDATE acidic_job_keys SET attr_accessors = ?", (bad,))
    with pytest.raises(acidic_job.Error) as caught:
        Attrs.run(1, key="attrs")
    message = str(caught.value)
    assert "attr_accessors" in message and "attrs" in message, message
    assert db.key("attrs")["locked_at"] is None


# --- 2.8 and 2.9 busy SQLite, misleading messages -------------------------------------------

def test_busy_borrowed_sqlite_raises_an_acidic_job_error(sqlite3_db: Any) -> None:
    """2.8: a borrowed sqlite3 connection that cannot get the write lock raises an
    acidic_job.Error (today: sqlite3.OperationalError('database is locked'))."""
    PH[0] = "?"
    sqlite3_db.app_table()
    wf = three_steps(sqlite3_db.connect(timeout=0.2), "Busy")
    assert wf.run(0) is True
    holder = sqlite3_db.raw()
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Exception) as caught:
            wf.run(1)
    finally:
        holder.execute("ROLLBACK")
    assert isinstance(caught.value, acidic_job.Error), repr(caught.value)


def test_busy_sqlite_message_says_one_writer(sqlite_url_db: Any) -> None:
    """2.9: busy SQLite says that SQLite allows one writer and how long it waited (today:
    "another transaction touched the same rows")."""
    PH[0] = "?"
    sqlite_url_db.app_table()
    wf = three_steps(sqlite_url_db.url, "BusyUrl", busy_timeout=0.2)
    assert wf.run(0) is True
    holder = sqlite_url_db.raw()
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(acidic_job.SerializationConflict) as caught:
            wf.run(1)
    finally:
        holder.execute("ROLLBACK")
    message = str(caught.value)
    assert "touched the same rows" not in message and "writer" in message, message


def test_a_missing_column_is_not_called_retryable(url_db: Any) -> None:
    """2.9: "the step can be retried" is not appended to errors a retry cannot fix."""
    url_db.app_table()

    @acidic_job.workflow(url_db.url, name="Missing")
    class Missing:
        @acidic_job.step
        def a(self, tx: Any) -> None:
            tx.execute("INSERT INTO app_log (no_such_column) VALUES (?)", ("x",))

    with pytest.raises(acidic_job.Error) as caught:
        Missing.run()
    assert "retried" not in str(caught.value), str(caught.value)


def test_port_out_of_range_is_an_invalid_argument() -> None:
    """2.9: postgres://@:99999/x is InvalidArgument (today: DatabaseError)."""
    @acidic_job.workflow("postgres://@:99999/x", name="BadPort")
    class BadPort:
        @acidic_job.step
        def a(self) -> None:
            pass

    with pytest.raises(acidic_job.InvalidArgument):
        BadPort.run()


def test_a_newer_schema_is_refused(url_db: Any) -> None:
    """2.9: tables written by a newer acidic_job are refused (today: accepted silently)."""
    wf = three_steps(url_db.url, "Schema")
    url_db.app_table()
    PH[0] = "?"
    assert wf.run(1) is True
    url_db.sql("UPDATE acidic_job_schema SET version = 999")

    @acidic_job.workflow(url_db.url, name="SchemaAgain")
    class Again:
        @acidic_job.step
        def a(self) -> None:
            pass

    with pytest.raises(acidic_job.Error):
        Again.run()


@pytest.mark.parametrize("statement", ["COMMIT", "ROLLBACK"])
def test_a_step_ending_its_transaction_is_refused(url_db: Any, statement: str) -> None:
    """3.2: COMMIT or ROLLBACK from a step on a URL store is refused with MisuseError and
    nothing the step wrote is committed twice (today: the later writes autocommit)."""
    url_db.app_table()
    attempts = [0]

    @acidic_job.workflow(url_db.url, name="Ending")
    class Ending:
        @acidic_job.step
        def a(self, tx: Any) -> None:
            attempts[0] += 1
            tx.execute("INSERT INTO app_log (tag) VALUES (?)", ("before",))
            if attempts[0] == 1:
                tx.execute(statement)
            tx.execute("INSERT INTO app_log (tag) VALUES (?)", ("after",))
            if attempts[0] == 1:
                raise RuntimeError("fail after the writes")

    with pytest.raises((RuntimeError, acidic_job.MisuseError)):
        Ending.run()
    committed = (url_db.app_rows("before"), url_db.app_rows("after"))
    assert committed == (0, 0), f"the failed attempt committed {committed} rows"
    assert Ending.run() is True
    assert url_db.app_rows("before") == 1 and url_db.app_rows("after") == 1


# --- 3.1 ack inside a step --------------------------------------------------------------------

def test_ack_inside_a_step_keeps_the_step_transaction(url_db: Any, recorder: Any) -> None:
    """3.1: acidic_job.ack inside a step joins the step's transaction or is refused with
    MisuseError; the step's later writes never autocommit (today: after one retry they are
    committed twice)."""
    url_db.app_table()
    attempts = [0]

    @acidic_job.workflow(url_db.url, name="Acking")
    class Acking:
        staged: int = 0

        @acidic_job.step
        def a(self) -> None:
            acidic_job.perform_transactionally(RecordedJob)

        @acidic_job.step
        def b(self, tx: Any) -> None:
            attempts[0] += 1
            tx.execute("INSERT INTO app_log (tag) VALUES (?)", ("before",))
            # the staged job of step a, sent once a committed
            self.staged = recorder.sent[-1][0]
            if attempts[0] == 1:  # on the workflow's own store, as a worker would
                acidic_job.ack(self.staged, Acking.__acidic_workflow__.database)
            tx.execute("INSERT INTO app_log (tag) VALUES (?)", ("after",))
            if attempts[0] == 1:
                raise RuntimeError("fail after the writes")

    with pytest.raises((RuntimeError, acidic_job.MisuseError)):
        Acking.run()
    committed = (url_db.app_rows("before"), url_db.app_rows("after"))
    assert committed == (0, 0), f"the failed attempt committed {committed} rows"
    assert Acking.run() is True
    assert url_db.app_rows("before") == 1 and url_db.app_rows("after") == 1


# --- 3.3, 3.4 crashes: run in a child so that a crash is a failure, not the end -------------

def run_child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONFAULTHANDLER": "1"})


def test_closing_a_run_inside_its_own_step_is_refused(tmp_path: Any) -> None:
    """3.3: Run.close() from inside its own step raises MisuseError there and frees nothing
    (today: close() succeeds, aj_run_step goes on with the freed run, a heap
    use-after-free under ASan; Ruby already refuses)."""
    child = run_child(f"""
import acidic_job
outcome = []
@acidic_job.workflow("sqlite:{tmp_path}/c.db", name="Closing")
class Closing:
    @acidic_job.step
    def a(self):
        try:
            acidic_job.current_step().run.close()
            outcome.append("close() returned")
        except acidic_job.MisuseError as e:
            outcome.append("close() raised MisuseError")
    @acidic_job.step
    def b(self):
        pass
try:
    Closing.run()
except BaseException as e:
    outcome.append("run raised " + type(e).__name__)
print("RESULT", "; ".join(outcome))
""")
    assert child.returncode == 0, child.stderr[-3000:]
    assert "RESULT close() raised MisuseError" in child.stdout, child.stdout + child.stderr[-2000:]


@pytest.mark.parametrize("call", ["_native.borrow_pg(1)", "_native.borrow_pg(12345678)",
                                  "_native.borrow_sqlite(1)", "_native.borrow_sqlite(object())"])
def test_native_borrow_of_a_wrong_type_is_a_type_error(call: str) -> None:
    """3.4: the native borrow functions check what they are given (today:
    _native.borrow_pg(1) segfaults)."""
    child = run_child(f"""
from acidic_job import _native
try:
    {call}
    print("RESULT accepted")
except TypeError as e:
    print("RESULT TypeError", e)
except BaseException as e:
    print("RESULT", type(e).__name__, e)
""")
    assert child.returncode == 0, f"exit {child.returncode}: {child.stderr[-2000:]}"
    assert "RESULT TypeError" in child.stdout, child.stdout


# --- 3.5 huge timeouts ------------------------------------------------------------------------

@pytest.mark.parametrize("seconds", [2 ** 63 / 1000 / 1000, 1.7e13, 9.2e15])
def test_a_huge_lock_timeout_keeps_the_lock(db: Any, seconds: float) -> None:
    """3.5: a lock timeout whose milliseconds overflow int64 when multiplied to
    microseconds is refused or clamped: a locked run stays locked."""
    db.app_table()
    PH[0] = db.ph
    try:
        options = dict(lock_timeout=seconds)
        wf = three_steps(db.connect(), "Huge", **options)
    except (acidic_job.InvalidArgument, TypeError, OverflowError):
        return  # refused: fine
    database = wf.__acidic_workflow__.database.current()
    store = database.store()
    spec = wf.__acidic_workflow__
    args_doc, _ = spec.encode_arguments((1,), {})
    # the acquisition commits in a transaction of its own (on a borrowed connection, the
    # host's, through its atomically hook)
    holder = _native.acquire(store, spec.native, "huge", spec.name, args_doc, "{}")
    try:
        other = three_steps(db.connect(), "Huge", **options)
        with pytest.raises(acidic_job.LockedIdempotencyKey):
            other.run(1, key="huge")
    finally:
        holder.close()


# --- 3.6 bad names ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a\0b", "\ud800", "", "x" * 256])
def test_bad_step_names_are_invalid_arguments(name: str) -> None:
    """3.6: a NUL byte truncated the name silently, a surrogate raised a bare
    UnicodeEncodeError: both are acidic_job.InvalidArgument."""
    with pytest.raises(acidic_job.InvalidArgument):
        _native.Workflow([(name, ())])


# --- 3.7 a key reused by another job ----------------------------------------------------------

def test_a_key_of_another_job_is_a_mismatch(db: Any) -> None:
    """3.7: A.run(key="shared") then B.run(key="shared") raises a mismatch naming both jobs
    (today: True without running B's steps)."""
    conn = db.connect()
    ran = []

    @acidic_job.workflow(conn, name="AlphaJob")
    class Alpha:
        @acidic_job.step
        def a(self) -> None:
            ran.append("alpha")

    @acidic_job.workflow(conn, name="BravoJob")
    class Bravo:
        @acidic_job.step
        def a(self) -> None:
            ran.append("bravo")

    assert Alpha.run(key="shared") is True
    with pytest.raises(acidic_job.MismatchedIdempotencyKeyAndJobArguments) as caught:
        Bravo.run(key="shared")
    assert "AlphaJob" in str(caught.value) and "BravoJob" in str(caught.value)
    assert ran == ["alpha"]


# --- 4 secrets --------------------------------------------------------------------------------

def exception_texts(exc: BaseException) -> str:
    texts = []
    while exc is not None:
        texts += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return "\n".join(texts)


@pytest.mark.parametrize("url,secrets", SECRET_CASES)
def test_passwords_never_reach_messages(url: str, secrets: List[str]) -> None:
    """4: no password, however mistyped, appears in an error."""
    @acidic_job.workflow(url, name="Secret")
    class Secret:
        @acidic_job.step
        def a(self) -> None:
            pass

    with pytest.raises(acidic_job.Error) as caught:
        Secret.run()
    text = exception_texts(caught.value)
    for secret in secrets:
        assert secret not in text, text


# --- 5 large arguments ------------------------------------------------------------------------

def incompressible(n: int) -> str:
    """n characters of base64 of random bytes."""
    return base64.b64encode(os.urandom(n * 3 // 4 + 3)).decode()[:n]


@pytest.mark.parametrize("size", [2800, 1 << 20])
def test_large_arguments(db: Any, size: int) -> None:
    """5: job arguments of any size (today on PostgreSQL: "index row size ... exceeds btree
    version 4 maximum 2704" above about 2.7 KB)."""
    big = incompressible(size)
    wf = three_steps(db.connect(), "Large")
    db.app_table()
    PH[0] = db.ph
    assert wf.run(big) is True
    assert wf.run(big) is True  # the finished run
    assert db.app_rows("a") == 1


def test_arguments_of_50_mb(url_db: Any) -> None:
    """5: 50 MB of arguments on both databases."""
    big = incompressible(50 << 20)
    url_db.app_table()
    PH[0] = "?"
    wf = three_steps(url_db.url, "Huge50")
    assert wf.run(big) is True
    assert url_db.app_rows("c") == 1


def test_an_old_unique_index_names_itself(pg_url_db: Any) -> None:
    """5: with acidic_job 0.7.0's unique index over job_args still in place, the error for
    large arguments names the index and what to do, not "the step can be retried"."""
    PH[0] = "?"
    pg_url_db.app_table()
    wf = three_steps(pg_url_db.url, "Legacy")
    assert wf.run(0) is True
    pg_url_db.sql("DROP INDEX IF EXISTS idx_acidic_job_keys_on_idempotency_key_n_job_name_n_job_args")
    pg_url_db.sql("CREATE UNIQUE INDEX index_acidic_job_keys_on_idempotency_key_job_name_job_args"
                  " ON acidic_job_keys (idempotency_key, job_name, job_args)")
    with pytest.raises(acidic_job.Error) as caught:
        wf.run(incompressible(1 << 20))
    message = str(caught.value)
    assert "index" in message and "retried" not in message, message
