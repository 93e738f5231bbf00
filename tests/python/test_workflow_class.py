"""The typed form ``class X(acidic_job.Workflow, database=db)``, duplicate steps in
both forms, and the URL cursor's typed values and lastrowid."""
from __future__ import annotations

import json
from typing import Any, ClassVar, List, Optional

import pytest

import acidic_job


def test_the_base_class_form_runs_persists_attributes_and_resumes(dbenv: Any) -> None:
    ph = dbenv.ph
    pk = "INTEGER PRIMARY KEY" if dbenv.group == "sqlite" else "SERIAL PRIMARY KEY"
    dbenv.table("rides", f"id {pk}, user_id INTEGER, origin TEXT")
    calls: List[str] = []
    fail = [True]

    class RideCreate(acidic_job.Workflow, database=dbenv.db, name="ClassForm"):
        ride_id: Optional[int] = None

        def __init__(self, user_id: int, origin: str) -> None:
            self.user_id, self.origin = user_id, origin

        @acidic_job.step
        def create_ride(self, tx: acidic_job.Cursor) -> None:
            calls.append("create_ride")
            tx.execute(f"INSERT INTO rides (user_id, origin) VALUES ({ph}, {ph}) RETURNING id",
                       (self.user_id, self.origin))
            self.ride_id = tx.fetchone()[0]

        @acidic_job.step
        def charge(self, tx: acidic_job.Cursor) -> None:
            calls.append(f"charge {self.ride_id}")
            if fail[0]:
                raise RuntimeError("card declined")

    with pytest.raises(RuntimeError, match="card declined"):
        RideCreate.run(42, "Paris")
    fail[0] = False
    assert RideCreate.run(42, origin="Paris") is True   # the same run, resumed at charge
    assert calls == ["create_ride", "charge 1", "charge 1"]
    row = dbenv.key_row("ClassForm")
    assert row["recovery_point"] == "FINISHED"
    assert json.loads(row["attr_accessors"]) == {"ride_id": 1}
    assert dbenv.sql("SELECT count(*) FROM rides")[0][0] == 1
    assert acidic_job.workflow.__module__ == "acidic_job.workflow"
    with pytest.raises(acidic_job.EncodeError, match="'ride_id'"):
        RideCreate(1, "x").ride_id = {1, 2}  # type: ignore[assignment]


def test_an_abstract_base_and_an_inheriting_workflow(sqlite_env: Any) -> None:
    class Audited(acidic_job.Workflow):           # no database: a base for workflows
        log: ClassVar[List[str]] = []             # not persisted: shared by the runs

        @acidic_job.step
        def audit(self) -> None:
            self.log.append(f"audit {type(self).__name__}")

    with pytest.raises(TypeError, match="not a workflow"):
        Audited.run()

    class Order(Audited, database=sqlite_env.db):
        @acidic_job.step
        def ship(self) -> None:
            self.log.append("ship")

    class Refund(Order):                          # a workflow on Order's database
        @acidic_job.step
        def refund(self) -> None:
            self.log.append("refund")

    assert Order.run() is True and Refund.run() is True
    assert Audited.log == ["audit Order", "ship", "audit Refund", "ship", "refund"]
    names = {r[0] for r in sqlite_env.sql("SELECT job_name FROM acidic_job_keys")}
    assert names == {f"{__name__}.{Order.__qualname__}", f"{__name__}.{Refund.__qualname__}"}
    with pytest.raises(TypeError, match="lock_timeout need database="):
        class Bad(acidic_job.Workflow, lock_timeout=3):
            pass
    with pytest.raises(TypeError, match="defines 'run'"):
        class Clash(acidic_job.Workflow, database=sqlite_env.db):
            @acidic_job.step
            def only(self) -> None:
                pass

            def run(self) -> None:  # type: ignore[override]
                pass


def test_two_steps_with_one_name_in_a_class_body_raise_duplicate_step() -> None:
    with pytest.raises(acidic_job.DuplicateStep, match="two steps named 'charge'"):
        class Twice(acidic_job.Workflow, database="sqlite::memory:"):
            @acidic_job.step
            def charge(self) -> None:
                pass

            @acidic_job.step  # type: ignore[no-redef]
            def charge(self) -> None:
                pass

    with pytest.raises(acidic_job.DuplicateStep, match="two steps named 'charge'"):
        @acidic_job.workflow("sqlite::memory:")
        class TwiceDecorated:
            @acidic_job.step
            def charge(self) -> None:
                pass

            @acidic_job.step(awaits=[])
            def charge(self) -> None:  # noqa: F811
                pass


def test_one_step_per_name_and_an_overriding_subclass_are_fine() -> None:
    @acidic_job.workflow("sqlite::memory:", name="Distinct")
    class Distinct:
        @acidic_job.step
        def charge(self) -> None:
            pass

        def helper(self) -> None:
            pass

        def helper(self) -> None:  # noqa: F811 - not a step: Python's usual replacement
            pass

        @acidic_job.step
        def notify(self) -> None:
            pass

    assert [s.name for s in Distinct.__acidic_workflow__.steps] == ["charge", "notify"]

    class Parent(acidic_job.Workflow, database="sqlite::memory:"):
        @acidic_job.step
        def charge(self) -> None:
            pass

    class Child(Parent):
        @acidic_job.step
        def charge(self) -> None:   # an override, in another class body
            pass

    assert [s.fn for s in Child.__acidic_workflow__.steps] == [Child.charge]


def test_a_decorated_class_without_source_is_accepted(tmp_path: Any) -> None:
    namespace: dict = {}
    exec("import acidic_job\n"
         "@acidic_job.workflow('sqlite::memory:', name='NoSource')\n"
         "class NoSource:\n"
         "    @acidic_job.step\n"
         "    def only(self) -> None:\n"
         "        pass\n", namespace)
    assert namespace["NoSource"].run() is True


def test_the_url_cursor_returns_typed_values_and_lastrowid(url_env: Any) -> None:
    dbenv = url_env
    pk = "INTEGER PRIMARY KEY" if dbenv.group == "sqlite" else "SERIAL PRIMARY KEY"
    dbenv.table("things", f"id {pk}, n INTEGER, flag BOOLEAN, label TEXT, price NUMERIC")
    seen: List[Any] = []

    class Typed(acidic_job.Workflow, database=dbenv.db, name="Typed"):
        @acidic_job.step
        def insert(self, tx: Any) -> None:
            tx.execute("INSERT INTO things (n, flag, label, price) VALUES (?, ?, ?, ?)",
                       (7, True, "seven", "7.50"))
            seen.append(tx.lastrowid)
            tx.execute("INSERT INTO things (n, flag, label, price) VALUES (?, ?, ?, ?)",
                       (8, False, None, "8"))
            seen.append(tx.lastrowid)
            tx.execute("SELECT n, flag, label FROM things ORDER BY id")
            seen.append(tx.fetchall())

    assert Typed.run() is True
    if dbenv.group == "sqlite":
        assert seen[:2] == [1, 2]
    else:
        assert seen[:2] == [None, None]   # PostgreSQL: RETURNING is the way
    assert seen[2] == [(7, 1, "seven"), (8, 0, None)]
