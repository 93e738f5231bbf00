"""Bad input and misuse: refused with an acidic_job error (or TypeError for a wrong type),
never a crash, a silent truncation, or a bare error of another library.

Run again under ASan+UBSan by run.sh: the cases that crashed before (a raw address
handed to borrow_pg, Run.close() inside its own step) must be clean there.
"""
from __future__ import annotations

import json
import sqlite3
from typing import Any, List

import pytest

import acidic_job
from acidic_job import _native
from conftest import PG_URL

SURROGATE = "x\udc80y"


def one_step_workflow(db: Any, name: str, body: Any = None) -> Any:
    @acidic_job.workflow(db, name=name)
    class OneStep:
        def __init__(self, value: Any = None) -> None:
            self.value = value

        @acidic_job.step
        def only(self) -> None:
            if body is not None:
                body(self)

    return OneStep


# --- keys ---------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["", "a\0b", SURROGATE])
def test_an_empty_nul_or_surrogate_key_is_invalid_argument_and_writes_nothing(
        dbenv: Any, key: str) -> None:
    calls: List[str] = []
    Job = one_step_workflow(dbenv.db, "BadKey", lambda self: calls.append("ran"))
    with pytest.raises(acidic_job.InvalidArgument) as info:
        Job.run(key=key)
    assert info.value.code_name == "AJ_EINVALID"
    assert "idempotency key" in str(info.value)
    assert calls == [] and dbenv.keys_count() == 0


def test_the_native_layer_refuses_a_nul_or_surrogate_key_too(sqlite_env: Any) -> None:
    store = _native.open(sqlite_env.url)
    wf = _native.Workflow(["only"])
    for key in ("a\0b", SURROGATE):
        with pytest.raises(acidic_job.InvalidArgument, match="idempotency key"):
            _native.acquire(store, wf, key, "Job", "{}", "{}")
    store.close()


# --- error documents ---------------------------------------------------------------

def test_a_builtin_exception_is_recorded_as_builtins_name(dbenv: Any) -> None:
    def fail(self: Any) -> None:
        raise ValueError("not a number")

    Job = one_step_workflow(dbenv.db, "Builtin", fail)
    with pytest.raises(ValueError, match="not a number"):
        Job.run()
    error = json.loads(dbenv.key_row()["error_object"])
    assert error == {"class": "builtins.ValueError", "message": "not a number"}


def test_an_exception_message_with_a_surrogate_is_still_recorded(dbenv: Any) -> None:
    def fail(self: Any) -> None:
        raise RuntimeError(SURROGATE)

    Job = one_step_workflow(dbenv.db, "SurrogateMessage", fail)
    with pytest.raises(RuntimeError):
        Job.run()
    row = dbenv.key_row()
    assert json.loads(row["error_object"]) == {"class": "builtins.RuntimeError",
                                               "message": SURROGATE}
    assert row["locked_at"] is None


# --- surrogates in text ------------------------------------------------------------

def test_surrogates_in_arguments_and_attributes_are_encode_errors_naming_them(
        sqlite_env: Any) -> None:
    Job = one_step_workflow(sqlite_env.db, "SurrogateArgs")
    with pytest.raises(acidic_job.EncodeError, match="argument 'value'.*lone surrogate"):
        Job.run(SURROGATE)
    assert sqlite_env.keys_count() == 0

    @acidic_job.workflow(sqlite_env.db, name="SurrogateAttr")
    class WithAttribute:
        note: str = ""

        @acidic_job.step
        def only(self) -> None:
            self.note = SURROGATE

    with pytest.raises(acidic_job.EncodeError, match="attribute 'note'.*lone surrogate"):
        WithAttribute.run()
    assert sqlite_env.key_row("SurrogateAttr")["recovery_point"] == "only"


def test_surrogates_in_native_text_arguments_are_invalid_argument(sqlite_env: Any) -> None:
    cases = [
        lambda: _native.open("sqlite:" + SURROGATE),
        lambda: _native.Workflow([SURROGATE]),
        lambda: _native.Workflow([("a", [SURROGATE])]),
    ]
    store = _native.open(sqlite_env.url)
    cases += [
        lambda: store.exec("SELECT ?", [SURROGATE]),
        lambda: store.exec("SELECT '" + SURROGATE + "'"),
        lambda: _native.acquire(store, _native.Workflow(["a"]), "k", SURROGATE),
        lambda: _native.acquire(store, _native.Workflow(["a"]), "k", "Job", '"' + SURROGATE + '"'),
    ]
    for case in cases:
        with pytest.raises(acidic_job.InvalidArgument, match="lone surrogate"):
            case()
    store.close()


def test_a_surrogate_in_a_staged_job_argument_is_an_encode_error(sqlite_env: Any) -> None:
    class Job:
        __acidic_job_adapter__ = ("test", "staged")

    def stage(self: Any) -> None:
        acidic_job.perform_transactionally(Job, SURROGATE)

    Staging = one_step_workflow(sqlite_env.db, "SurrogateStage", stage)
    with pytest.raises(acidic_job.EncodeError, match="argument 0 of staged.*lone surrogate"):
        Staging.run()
    assert sqlite_env.sql("SELECT count(*) FROM staged_acidic_jobs")[0][0] == 0


# --- NUL bytes in names ------------------------------------------------------------

def test_a_nul_byte_in_a_step_or_awaited_job_name_is_refused_not_truncated() -> None:
    with pytest.raises(acidic_job.InvalidArgument, match="step name contains a NUL byte"):
        _native.Workflow(["a\0b"])
    with pytest.raises(acidic_job.InvalidArgument, match="awaited job name"):
        _native.Workflow([("a", ["job\0x"])])
    assert _native.Workflow(["a", "b"]).steps == [("a", ()), ("b", ())]


def test_a_workflow_name_with_a_nul_byte_or_a_surrogate_is_refused() -> None:
    for name in ("", "a\0b", SURROGATE):
        with pytest.raises(acidic_job.InvalidArgument, match="workflow name"):
            acidic_job.workflow("sqlite::memory:", name=name)
    with pytest.raises(TypeError):
        acidic_job.workflow("sqlite::memory:", name=3)  # type: ignore[arg-type]


# --- native connections of the wrong type -------------------------------------------

@pytest.mark.parametrize("thing", [1, 0, "postgresql://x", object(), None])
def test_borrow_pg_refuses_anything_but_a_psycopg_connection(thing: Any) -> None:
    with pytest.raises(TypeError, match="psycopg"):
        _native.borrow_pg(thing)


def test_borrow_pg_refuses_a_sqlite_connection_and_borrow_sqlite_a_number(tmp_path: Any) -> None:
    conn = sqlite3.connect(str(tmp_path / "x.db"))
    with pytest.raises(TypeError, match="psycopg"):
        _native.borrow_pg(conn)
    for thing in (1, object(), "sqlite:x.db"):
        with pytest.raises(TypeError, match="sqlite3.Connection"):
            _native.borrow_sqlite(thing)
    conn.close()
    with pytest.raises(acidic_job.MisuseError, match="closed"):
        _native.borrow_sqlite(conn)


@pytest.mark.parametrize("driver", ["psycopg", "psycopg2"])
def test_borrow_pg_refuses_a_closed_connection_and_borrows_an_open_one(driver: str) -> None:
    if not PG_URL:
        pytest.fail("AJ_TEST_PG_URL is not set (tests/python/run.sh starts a server)")
    module = __import__(driver)
    conn = module.connect(PG_URL)
    store = _native.borrow_pg(conn)
    assert store.driver == "postgres" and store.borrowed
    store.close()
    conn.close()
    with pytest.raises(acidic_job.MisuseError, match="closed"):
        _native.borrow_pg(conn)


# --- the run freed from inside its own step ----------------------------------------------

def test_run_close_or_step_inside_its_own_step_is_a_misuse_not_a_crash(dbenv: Any) -> None:
    seen: List[str] = []

    def misuse(self: Any) -> None:
        run = acidic_job.current_step().run  # type: ignore[union-attr]
        for call in (run.close, lambda: run.step(lambda name: None),
                     lambda: run.execute(lambda name: None)):
            with pytest.raises(acidic_job.MisuseError, match="inside a step of the same run"):
                call()
            seen.append("refused")
        assert run.status == _native.RUN_READY  # still usable

    Job = one_step_workflow(dbenv.db, "CloseInside", misuse)
    assert Job.run() is True
    assert seen == ["refused"] * 3
    assert dbenv.key_row()["recovery_point"] == "FINISHED"


def test_run_close_inside_its_own_step_through_the_native_layer(sqlite_env: Any) -> None:
    store = _native.open(sqlite_env.url)
    run = _native.acquire(store, _native.Workflow(["only"]), "native-close", "Native", "{}",
                          "{}")
    errors: List[BaseException] = []

    def step(name: str) -> None:
        try:
            run.close()
        except acidic_job.MisuseError as exc:
            errors.append(exc)

    assert run.step(step) == _native.RUN_SUCCEEDED
    assert len(errors) == 1
    run.close()
    run.close()  # closing twice is fine
    with pytest.raises(acidic_job.MisuseError, match="closed"):
        run.step(step)
    store.close()
