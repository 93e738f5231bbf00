"""Bad input through the Python package, with the exact error asserted.

The rule these tests hold the package to: a value of the wrong *type* is a TypeError; a
value of the right type that is not acceptable (empty, a NUL byte, a lone surrogate, out
of range, too long) is an ``acidic_job.InvalidArgument`` (also a ValueError); a value the
codec cannot encode is an ``acidic_job.EncodeError``. Never a bare UnicodeEncodeError,
OverflowError or ValueError from the layers below, never a crash.
"""
from __future__ import annotations

import math
from typing import Any

import pytest

import acidic_job
from acidic_job import _native, adapters


def one_step(db: Any, **options: Any) -> Any:
    @acidic_job.workflow(db, **options)
    class OneStep:
        note: str = ""

        def __init__(self, value: Any = None) -> None:
            self.value = value

        @acidic_job.step
        def only(self) -> None:
            pass
    return OneStep


@pytest.mark.parametrize("url", ["", "   ", "sqlite:\0x", "mysql://localhost/x",
                                 "postgres://@:99999/x", "postgres://@:-1/x",
                                 "sqlite:/tmp/\udc80.db"])
def test_bad_urls_are_invalid_arguments(url: str) -> None:
    with pytest.raises(acidic_job.InvalidArgument):
        one_step(url).run()


def test_a_database_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        one_step(42)


@pytest.mark.parametrize("option,value", [
    ("lock_timeout", -1), ("busy_timeout", -1), ("conflict_retries", -1),
    ("lock_timeout", math.nan), ("busy_timeout", math.nan), ("synchronous", "sometimes"),
    ("lock_timeout", "90"),
])
def test_bad_option_values_are_refused(sqlite_url_db: Any, option: str, value: Any) -> None:
    """Out of range or not a number: InvalidArgument or TypeError, never a bare OverflowError
    or ValueError (0.8: int(inf * 1000) raised OverflowError, int(nan) ValueError)."""
    with pytest.raises((acidic_job.InvalidArgument, TypeError)) as caught:
        one_step(sqlite_url_db.url, **{option: value}).run()
    assert isinstance(caught.value, (acidic_job.Error, TypeError)), repr(caught.value)
    assert type(caught.value) not in (OverflowError, ValueError), repr(caught.value)


@pytest.mark.parametrize("option,value", [
    ("lock_timeout", math.inf), ("lock_timeout", 1e300), ("busy_timeout", math.inf),
    ("busy_timeout", 1e300),
])
def test_endless_timeouts_are_the_longest(sqlite_url_db: Any, option: str, value: Any) -> None:
    """A timeout past what 64 bits of milliseconds hold is the longest one (the binding
    clamps, the core saturates): the run works (test_recipes checks the lock holds)."""
    assert one_step(sqlite_url_db.url, **{option: value}).run() is True


@pytest.mark.parametrize("key", ["", "a\0b", "\ud800", "x" * 256])
def test_bad_keys_are_invalid_arguments(sqlite_url_db: Any, key: str) -> None:
    """Today: TypeError for "" and NUL, a bare UnicodeEncodeError for a surrogate."""
    with pytest.raises(acidic_job.InvalidArgument):
        one_step(sqlite_url_db.url).run(key=key)


def test_a_key_of_the_wrong_type_is_a_type_error(sqlite_url_db: Any) -> None:
    with pytest.raises(TypeError):
        one_step(sqlite_url_db.url).run(key=5)


@pytest.mark.parametrize("name", ["", "a\0b", "\ud800"])
def test_bad_job_names_are_invalid_arguments(sqlite_url_db: Any, name: str) -> None:
    with pytest.raises(acidic_job.InvalidArgument):
        one_step(sqlite_url_db.url, name=name).run()


def test_arguments_with_a_lone_surrogate_are_an_encode_error(db: Any) -> None:
    """Today: a bare UnicodeEncodeError from the native layer."""
    with pytest.raises(acidic_job.EncodeError):
        one_step(db.connect()).run("\ud800")


def test_arguments_with_a_nul_byte_are_fine(db: Any) -> None:
    """JSON escapes NUL: the run works (the document holds no NUL byte)."""
    assert one_step(db.connect()).run("a\0b") is True


def test_attributes_with_a_lone_surrogate_are_an_encode_error(sqlite_url_db: Any) -> None:
    @acidic_job.workflow(sqlite_url_db.url)
    class Attr:
        note: str = ""

        @acidic_job.step
        def only(self) -> None:
            self.note = "\udc00"

    with pytest.raises(acidic_job.EncodeError):
        Attr.run()


@pytest.mark.parametrize("steps,error", [
    ([("FINISHED", ())], acidic_job.InvalidArgument),
    ([("", ())], acidic_job.InvalidArgument),
    ([("a", ()), ("a", ())], acidic_job.DuplicateStep),
    ([("a", ("",))], acidic_job.InvalidArgument),
    ([("a", ("b\0c",))], acidic_job.InvalidArgument),
    ([("a", ("\ud800",))], acidic_job.InvalidArgument),
])
def test_bad_native_workflows(steps: Any, error: Any) -> None:
    with pytest.raises(error):
        _native.Workflow(steps)


def test_staging_outside_a_step_is_misuse() -> None:
    class Job:
        __acidic_job_adapter__ = ("celery", "job")
    with pytest.raises(acidic_job.MisuseError):
        acidic_job.perform_transactionally(Job)


@pytest.mark.parametrize("older_than,error", [
    (-1, TypeError), ("1", TypeError), (math.nan, (TypeError, acidic_job.InvalidArgument)),
])
def test_bad_drain_ages(sqlite_url_db: Any, older_than: Any, error: Any) -> None:
    """0.8: nan raised a bare ValueError."""
    one_step(sqlite_url_db.url).run()
    with pytest.raises(error):
        acidic_job.drain(sqlite_url_db.url, older_than=older_than)


class _Counting(adapters.Adapter):
    name = "bad-input-counter"

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(self, staged_id: int, job_name: str, payload: Any) -> None:
        self.sent += 1


@pytest.mark.parametrize("older_than", [math.inf, 1e300])
def test_endless_drain_ages_deliver_nothing(sqlite_url_db: Any, older_than: float) -> None:
    """Nothing is older than forever (0.8: inf and 1e300 raised a bare OverflowError, and
    aj_store_drain(store, INT64_MAX) overflowed into "everything"): a staged row of 2000
    is not handed out, and a drain of age 0 then delivers it."""
    counter = adapters.install_adapter(_Counting())
    one_step(sqlite_url_db.url).run()
    sqlite_url_db.stage_rows(counter.name, 1)
    assert acidic_job.drain(sqlite_url_db.url, older_than=older_than) == 0
    assert counter.sent == 0
    assert acidic_job.drain(sqlite_url_db.url, older_than=0) == 1
    assert counter.sent == 1


@pytest.mark.parametrize("staged_id,error", [
    ("1", TypeError), (True, TypeError), (0, acidic_job.InvalidArgument),
    (-5, acidic_job.InvalidArgument), (2 ** 70, acidic_job.InvalidArgument),
])
def test_bad_acknowledgements(sqlite_url_db: Any, staged_id: Any, error: Any) -> None:
    one_step(sqlite_url_db.url).run()
    with pytest.raises(error):
        acidic_job.ack(staged_id, sqlite_url_db.url)


@pytest.mark.parametrize("sql,params,error", [
    ("SELECT 1\0", (), acidic_job.InvalidArgument),
    ("", (), acidic_job.InvalidArgument),
    ("SELECT ?", ("a\0b",), acidic_job.InvalidArgument),
    ("SELECT ?", ("\ud800",), acidic_job.InvalidArgument),
    ("SELECT ?", (1.5,), TypeError),
    ("SELECT ?", (2 ** 70,), acidic_job.InvalidArgument),
])
def test_bad_sql_in_a_step(url_db: Any, sql: str, params: Any, error: Any) -> None:
    seen = []

    @acidic_job.workflow(url_db.url)
    class Sql:
        @acidic_job.step
        def only(self, tx: Any) -> None:
            try:
                tx.execute(sql, params)
            except BaseException as exc:  # noqa: B902 - judged below
                seen.append(exc)
                raise

    with pytest.raises(BaseException):
        Sql.run()
    assert seen and isinstance(seen[0], error), repr(seen[0] if seen else None)
