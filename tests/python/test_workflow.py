"""Workflows on every database kind: steps, failures, resume, attributes, errors."""
from __future__ import annotations

import datetime
import json
from typing import Any, List, Optional

import pytest

import acidic_job


class CardDeclined(Exception):
    pass


def make_ride_workflow(env: Any, calls: List[str], fail_at: Optional[List[str]] = None,
                       name: str = "RideCreate", lock_timeout: Optional[float] = None) -> Any:
    """Three steps writing to `rides` / `charges`; `fail_at` lists steps that raise."""
    ph = env.ph
    fail_at = fail_at if fail_at is not None else []

    @acidic_job.workflow(env.db, name=name, lock_timeout=lock_timeout)
    class RideCreate:
        ride_id: Optional[int] = None
        charged: bool = False

        def __init__(self, user_id: int, params: dict) -> None:
            self.user_id = user_id
            self.params = params

        @acidic_job.step
        def create_ride(self, tx: Any) -> None:
            calls.append("create_ride")
            tx.execute(f"INSERT INTO rides (user_id, origin) VALUES ({ph}, {ph})",
                       (self.user_id, self.params["origin"]))
            tx.execute("SELECT max(id) FROM rides")
            self.ride_id = int(tx.fetchone()[0])
            if "create_ride" in fail_at:
                raise CardDeclined("boom in create_ride")

        @acidic_job.step
        def charge(self, tx: Any) -> None:
            calls.append("charge")
            tx.execute(f"INSERT INTO charges (ride_id) VALUES ({ph})", (self.ride_id,))
            self.charged = True
            if "charge" in fail_at:
                raise CardDeclined("card declined")

        @acidic_job.step
        def send_receipt(self) -> None:
            calls.append("send_receipt")
            assert self.charged and self.ride_id is not None

    return RideCreate


@pytest.fixture
def rides(dbenv: Any) -> Any:
    pk = "INTEGER PRIMARY KEY" if dbenv.group == "sqlite" else "SERIAL PRIMARY KEY"
    dbenv.table("rides", f"id {pk}, user_id INTEGER, origin TEXT")
    dbenv.table("charges", "ride_id INTEGER")
    return dbenv


def test_steps_run_in_order_and_the_run_succeeds(rides: Any) -> None:
    calls: List[str] = []
    Ride = make_ride_workflow(rides, calls)
    assert Ride.run(1, {"origin": "Paris"}) is True
    assert calls == ["create_ride", "charge", "send_receipt"]
    row = rides.key_row()
    assert row["recovery_point"] == "FINISHED"
    assert row["error_object"] is None and row["locked_at"] is None
    assert json.loads(row["job_args"]) == {"params": {"origin": "Paris"}, "user_id": 1}
    assert json.loads(row["attr_accessors"]) == {"charged": True, "ride_id": 1}
    assert rides.sql("SELECT count(*) FROM rides")[0][0] == 1


def test_a_failed_step_rolls_back_records_the_error_and_reraises_it_unchanged(rides: Any
                                                                              ) -> None:
    calls: List[str] = []
    Ride = make_ride_workflow(rides, calls, fail_at=["charge"])
    with pytest.raises(CardDeclined) as info:
        Ride.run(1, {"origin": "Paris"})
    assert type(info.value) is CardDeclined and str(info.value) == "card declined"
    assert calls == ["create_ride", "charge"]
    assert rides.sql("SELECT count(*) FROM rides")[0][0] == 1     # step 1 committed
    assert rides.sql("SELECT count(*) FROM charges")[0][0] == 0   # step 2 rolled back
    row = rides.key_row()
    assert row["recovery_point"] == "charge"
    assert row["locked_at"] is None                               # lock released
    error = json.loads(row["error_object"])
    assert error == {"class": "test_workflow.CardDeclined", "message": "card declined"}
    # the attribute set by the failed step was rolled back with it
    assert json.loads(row["attr_accessors"]) == {"charged": False, "ride_id": 1}


def test_a_rerun_resumes_at_the_failed_step_and_never_repeats_a_finished_one(rides: Any
                                                                             ) -> None:
    calls: List[str] = []
    fail_at = ["charge"]
    Ride = make_ride_workflow(rides, calls, fail_at=fail_at)
    with pytest.raises(CardDeclined):
        Ride.run(1, {"origin": "Paris"})
    fail_at.clear()
    assert Ride.run(1, {"origin": "Paris"}) is True
    assert calls == ["create_ride", "charge", "charge", "send_receipt"]
    assert rides.sql("SELECT count(*) FROM rides")[0][0] == 1
    assert rides.sql("SELECT ride_id FROM charges") == [(1,)]
    row = rides.key_row()
    assert row["recovery_point"] == "FINISHED" and row["error_object"] is None


def test_a_finished_run_returns_without_running_anything(rides: Any) -> None:
    calls: List[str] = []
    Ride = make_ride_workflow(rides, calls)
    assert Ride.run(1, {"origin": "Paris"}) is True
    calls.clear()
    assert Ride.run(1, {"origin": "Paris"}) is True
    assert calls == []
    assert rides.sql("SELECT count(*) FROM rides")[0][0] == 1


def test_attributes_are_read_back_on_resume(rides: Any) -> None:
    seen: List[Any] = []

    @acidic_job.workflow(rides.db, name="Attrs")
    class Attrs:
        counter: int = 0
        items: list = []
        label: Optional[str] = None

        @acidic_job.step
        def first(self, tx: Any) -> None:
            self.counter = 41
            self.items.append("a")
            self.label = "é ünïcode"

        @acidic_job.step
        def second(self, tx: Any) -> None:
            seen.append((self.counter, list(self.items), self.label))
            self.counter += 1
            if len(seen) == 1:
                raise CardDeclined("first time")

    with pytest.raises(CardDeclined):
        Attrs.run()
    assert json.loads(rides.key_row()["attr_accessors"]) == {
        "counter": 41, "items": ["a"], "label": "é ünïcode"}
    assert Attrs.run() is True
    # a fresh instance read the persisted values, not the class defaults
    assert seen == [(41, ["a"], "é ünïcode"), (41, ["a"], "é ünïcode")]
    assert json.loads(rides.key_row()["attr_accessors"])["counter"] == 42
    assert Attrs.items == []  # the mutable default was copied, never shared


def test_an_unencodable_attribute_names_itself_and_writes_nothing(rides: Any) -> None:
    ph = rides.ph

    @acidic_job.workflow(rides.db, name="BadAttr")
    class BadAttr:
        payload: Any = None
        items: list = []

        @acidic_job.step
        def first(self, tx: Any) -> None:
            tx.execute(f"INSERT INTO charges (ride_id) VALUES ({ph})", (7,))
            self.payload = object()

    with pytest.raises(acidic_job.EncodeError, match="'payload'") as info:
        BadAttr.run()
    assert isinstance(info.value, TypeError)
    assert rides.sql("SELECT count(*) FROM charges")[0][0] == 0
    assert json.loads(rides.key_row()["attr_accessors"]) == {"items": [], "payload": None}

    @acidic_job.workflow(rides.db, name="BadAttrInPlace")
    class BadAttrInPlace:
        items: list = []

        @acidic_job.step
        def first(self, tx: Any) -> None:
            tx.execute(f"INSERT INTO charges (ride_id) VALUES ({ph})", (8,))
            self.items.append({1, 2})  # mutated in place: caught when the step ends

    with pytest.raises(acidic_job.EncodeError, match="'items'"):
        BadAttrInPlace.run()
    assert rides.sql("SELECT count(*) FROM charges")[0][0] == 0


def test_an_unencodable_argument_names_itself_and_writes_nothing(rides: Any) -> None:
    calls: List[str] = []
    Ride = make_ride_workflow(rides, calls)
    with pytest.raises(acidic_job.EncodeError, match="'params'"):
        Ride.run(1, {"origin": object()})
    with pytest.raises(acidic_job.EncodeError, match="'user_id'"):
        Ride.run(float("nan"), {"origin": "x"})
    assert calls == []
    assert rides.keys_count() == 0


def test_wrong_argument_types_raise_type_error_and_write_nothing(rides: Any) -> None:
    calls: List[str] = []
    Ride = make_ride_workflow(rides, calls)
    with pytest.raises(TypeError, match="missing a required argument"):
        Ride.run(1)
    with pytest.raises(TypeError, match="unexpected keyword"):
        Ride.run(1, {"origin": "x"}, colour="red")
    with pytest.raises(TypeError, match="key must be a str"):
        Ride.run(1, {"origin": "x"}, key=12)
    with pytest.raises(acidic_job.InvalidArgument):
        Ride.run(1, {"origin": "x"}, key="")
    with pytest.raises(TypeError):
        acidic_job.workflow(rides.db, lock_timeout="soon")
    assert calls == []
    assert rides.keys_count() == 0


def test_mismatched_arguments_for_a_key_raise_and_change_nothing(rides: Any) -> None:
    calls: List[str] = []
    Ride = make_ride_workflow(rides, calls)
    assert Ride.run(1, {"origin": "Paris"}, key="ride-1") is True
    with pytest.raises(acidic_job.MismatchedIdempotencyKeyAndJobArguments) as info:
        Ride.run(2, {"origin": "Paris"}, key="ride-1")
    assert info.value.code_name == "AJ_EMISMATCH"
    assert "new key" in str(info.value)  # says what to do
    row = rides.key_row()
    assert row["idempotency_key"] == "ride-1"
    assert json.loads(row["job_args"])["user_id"] == 1
    assert calls == ["create_ride", "charge", "send_receipt"]


def test_equal_arguments_encode_to_equal_bytes(rides: Any) -> None:
    calls: List[str] = []
    Ride = make_ride_workflow(rides, calls)
    assert Ride.run(1, {"origin": "Paris", "seats": 2}) is True
    # other key order, keyword instead of positional: the same run
    assert Ride.run(params={"seats": 2, "origin": "Paris"}, user_id=1) is True
    assert calls == ["create_ride", "charge", "send_receipt"]
    assert rides.keys_count() == 1


def test_a_step_can_finish_the_workflow_early(rides: Any) -> None:
    calls: List[str] = []

    @acidic_job.workflow(rides.db, name="Early")
    class Early:
        @acidic_job.step
        def first(self) -> Any:
            calls.append("first")
            return acidic_job.FINISH

        @acidic_job.step
        def second(self) -> None:
            calls.append("second")

    assert Early.run() is True
    assert Early.run() is True
    assert calls == ["first"]
    assert rides.key_row()["recovery_point"] == "FINISHED"


def test_a_step_can_jump_to_another_step(rides: Any) -> None:
    calls: List[str] = []

    @acidic_job.workflow(rides.db, name="Jump")
    class Jump:
        @acidic_job.step
        def first(self) -> Any:
            calls.append("first")
            return acidic_job.goto("third")

        @acidic_job.step
        def second(self) -> None:
            calls.append("second")

        @acidic_job.step
        def third(self) -> None:
            calls.append("third")

    assert Jump.run() is True
    assert calls == ["first", "third"]


def test_the_function_form_runs_once_per_arguments(rides: Any) -> None:
    ph = rides.ph
    calls: List[int] = []

    @acidic_job.job(rides.db, name="charge_once")
    def charge_once(tx: Any, ride_id: int) -> None:
        calls.append(ride_id)
        tx.execute(f"INSERT INTO charges (ride_id) VALUES ({ph})", (ride_id,))

    assert charge_once.run(5) is True
    assert charge_once(5) is True
    assert charge_once.run(6) is True
    assert calls == [5, 6]
    assert sorted(rides.sql("SELECT ride_id FROM charges")) == [(5,), (6,)]
    with pytest.raises(TypeError):
        charge_once.run()


def test_a_custom_codec_encodes_other_types(rides: Any) -> None:
    codec = acidic_job.JSONCodec(
        default=lambda v: {"$date": v.isoformat()} if isinstance(v, datetime.date) else None,
        object_hook=lambda d: datetime.date.fromisoformat(d["$date"]) if "$date" in d else d)
    seen: List[Any] = []

    @acidic_job.workflow(rides.db, name="Dated", codec=codec)
    class Dated:
        due: Optional[datetime.date] = None

        def __init__(self, day: datetime.date) -> None:
            self.day = day

        @acidic_job.step
        def first(self) -> None:
            self.due = self.day + datetime.timedelta(days=1)

        @acidic_job.step
        def second(self) -> None:
            seen.append(self.due)
            if len(seen) == 1:
                raise CardDeclined("again")

    with pytest.raises(CardDeclined):
        Dated.run(datetime.date(2024, 2, 28))
    assert Dated.run(datetime.date(2024, 2, 28)) is True
    assert seen == [datetime.date(2024, 2, 29)] * 2
    row = rides.key_row()
    assert json.loads(row["job_args"]) == {"day": {"$date": "2024-02-28"}}


def test_an_unknown_recovery_point_raises_and_keeps_the_run_locked(rides: Any) -> None:
    calls: List[str] = []
    fail = ["charge"]
    Ride = make_ride_workflow(rides, calls, fail_at=fail, name="Renamed")
    with pytest.raises(CardDeclined):
        Ride.run(1, {"origin": "x"})

    @acidic_job.workflow(rides.db, name="Renamed")
    class Renamed:
        def __init__(self, user_id: int, params: dict) -> None:
            pass

        @acidic_job.step
        def create_ride(self) -> None:
            calls.append("new create_ride")

        @acidic_job.step
        def bill(self) -> None:  # "charge" was renamed
            calls.append("bill")

    with pytest.raises(acidic_job.UnknownRecoveryPoint, match="charge"):
        Renamed.run(1, {"origin": "x"})
    assert "bill" not in calls and "new create_ride" not in calls
    assert rides.key_row()["recovery_point"] == "charge"


def test_a_locked_run_raises_locked_idempotency_key(rides: Any) -> None:
    # A run locked by another worker: the lock is taken when the run is acquired and
    # released when it finishes or fails; a step that re-enters its own run sees it.
    other = rides.make_db()

    @acidic_job.workflow(other, name="Locked")
    class Outside:
        @acidic_job.step
        def only(self) -> None:
            pass

    @acidic_job.workflow(rides.db, name="Locked")
    class Locked:
        @acidic_job.step
        def only(self) -> None:
            pass

    # Simulate the other worker: acquire with the native API and do not finish.
    from acidic_job import _native
    database = Locked.__acidic_workflow__.database.current()
    store = database.store()
    # the core asks a borrowed connection's host for the transaction itself
    run = _native.acquire(store, Locked.__acidic_workflow__.native, "the-key", "Locked",
                          "{}", "{}")
    assert run.status == _native.RUN_READY
    run.close()
    with pytest.raises(acidic_job.LockedIdempotencyKey) as info:
        Outside.run(key="the-key")
    assert info.value.code_name == "AJ_ELOCKED"
    assert rides.key_row()["recovery_point"] == "only"


def test_a_workflow_without_steps_or_with_duplicate_steps_is_refused(rides: Any) -> None:
    with pytest.raises(acidic_job.NoDefinedSteps):
        @acidic_job.workflow(rides.db)
        class Empty:
            pass
    from acidic_job import _native
    with pytest.raises(acidic_job.DuplicateStep):
        _native.Workflow([("a", ()), ("a", ())])
    with pytest.raises(acidic_job.InvalidArgument):
        _native.Workflow([("FINISHED", ())])
    assert rides.sql("SELECT count(*) FROM rides")[0][0] == 0


def test_perform_transactionally_outside_a_step_is_a_misuse(rides: Any) -> None:
    import celery
    app = celery.Celery("t", broker="memory://")

    @app.task
    def t() -> None:
        pass

    with pytest.raises(acidic_job.MisuseError, match="inside a step"):
        acidic_job.perform_transactionally(t)
    with pytest.raises(acidic_job.UnknownJobAdapter):
        @acidic_job.workflow(rides.db, name="Nope")
        class Nope:
            @acidic_job.step(awaits=[print])
            def s(self) -> None:
                pass


def test_staging_an_unencodable_argument_or_an_unknown_job_fails_the_step(rides: Any) -> None:
    import celery
    app = celery.Celery("t", broker="memory://")

    @app.task(name="t.receipt")
    def receipt(ride: Any) -> None:
        pass

    ph = rides.ph
    staged: List[Any] = []

    @acidic_job.workflow(rides.db, name="Stager")
    class Stager:
        def __init__(self, what: str) -> None:
            self.what = what

        @acidic_job.step
        def only(self, tx: Any) -> None:
            tx.execute(f"INSERT INTO charges (ride_id) VALUES ({ph})", (1,))
            if self.what == "unencodable":
                staged.append(acidic_job.perform_transactionally(receipt, object()))
            else:
                staged.append(acidic_job.perform_transactionally(print, 1))

    with pytest.raises(acidic_job.EncodeError, match="argument 0 of t.receipt"):
        Stager.run("unencodable")
    with pytest.raises(acidic_job.UnknownJobAdapter):
        Stager.run("function")
    assert staged == []
    assert rides.sql("SELECT count(*) FROM charges")[0][0] == 0
    assert rides.sql("SELECT count(*) FROM staged_acidic_jobs")[0][0] == 0


def test_a_run_whose_row_was_deleted_raises_not_found(rides: Any) -> None:
    calls: List[str] = []
    ph = rides.ph

    @acidic_job.workflow(rides.db, name="Vanishing")
    class Vanishing:
        @acidic_job.step
        def first(self, tx) -> None:
            calls.append("first")  # the run's row exists once this step commits

        @acidic_job.step
        def delete_own_row(self, tx) -> None:
            calls.append("delete_own_row")
            tx.execute("DELETE FROM acidic_job_keys")  # commits with this step

        @acidic_job.step
        def after(self, tx) -> None:
            calls.append("after")
            tx.execute(f"INSERT INTO charges (ride_id) VALUES ({ph})", (2,))

    with pytest.raises(acidic_job.NotFound, match="no longer exists"):
        Vanishing.run()
    # Where the core claims the run last (SQLite, borrowed PostgreSQL) the next step's
    # code runs before the claim finds the row gone; its writes roll back.
    assert calls in (["first", "delete_own_row"], ["first", "delete_own_row", "after"])
    assert rides.sql("SELECT count(*) FROM charges")[0][0] == 0
    assert issubclass(acidic_job.NotFound, acidic_job.Error)
