"""acidic_job.admin on every kind of database (the operator's connection is the test's:
a borrowed sqlite3, psycopg or psycopg2 connection, or a URL), over runs made by the
real workflows of shop_app (succeeded, failed, awaiting, dead, stranded by a SIGKILLed
worker, running in a live worker) and a row as acidic_job 0.7.0 wrote it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator, List, Optional, Tuple

import pytest

import acidic_job
import shop_app
from acidic_job.admin import Admin, BulkResult, Run, parse_error, parse_states

HERE = os.path.dirname(os.path.abspath(__file__))


_opened = shop_app.opened  # closed after each test (conftest.py)
make_app = shop_app.make_tracked


@pytest.fixture
def shop(dbenv: Any) -> shop_app.App:
    app = make_app(dbenv.url)
    app.seed()
    return app


def admin_for(env: Any, lock_timeout: float = 60) -> Admin:
    """The operator's Admin on the test's kind of connection (a fresh one: the
    application's own store is a URL store)."""
    return url_admin(env.make_db(), lock_timeout)


def url_admin(db: Any, lock_timeout: Optional[float] = None) -> Admin:
    admin = Admin(db, lock_timeout=lock_timeout)
    _opened.append(admin)
    return admin


def keys(runs: Any) -> List[str]:
    return [r.key for r in runs]


def rides_of(env: Any, rider: int) -> int:
    return env.sql("SELECT count(*) FROM rides WHERE rider = ?", (rider,))[0][0]


def receipts_of(env: Any, app: shop_app.App, key: str) -> int:
    ride_id = json.loads(url_admin(env.url).show(key).attributes or "{}")["ride_id"]
    return env.sql("SELECT count(*) FROM receipts WHERE ride_id = ?", (ride_id,))[0][0]


class Worker:
    """``shop_app.py URL hang RIDER``: a real worker process inside the charge step of
    ride-RIDER, holding its lock."""

    def __init__(self, env: Any, rider: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "shop_app.py"), env.url, "hang", str(rider)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=HERE, env=dict(os.environ, PYTHONPATH=HERE))
        line = self.proc.stdout.readline().strip()  # type: ignore[union-attr]
        if line != "IN_STEP":
            self.kill()
            raise AssertionError(f"the worker did not reach its step: {line!r} "
                                 f"{self.proc.stderr.read()!r}")  # type: ignore[union-attr]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def release(self) -> Tuple[int, str]:
        """Let the step go on; the worker's exit code and stderr."""
        _, err = self.proc.communicate("", timeout=60)
        return self.proc.returncode, err


@pytest.fixture
def workers() -> Iterator[List[Worker]]:
    started: List[Worker] = []
    yield started
    for w in started:
        w.kill()


# --- reading -------------------------------------------------------------------------

def test_list_filters_and_pages_runs_in_every_state(dbenv: Any, shop: shop_app.App) -> None:
    admin = admin_for(dbenv)
    everything = admin.list()
    assert keys(everything.runs) == ["ride-request-0.7.0", "payout-9", "split-7", "ride-3",
                                     "ride-2", "ride-1"]  # newest first
    assert everything.next_cursor is None
    states = {r.key: r.state for r in everything.runs}
    assert states == {"ride-1": "succeeded", "ride-2": "succeeded", "ride-3": "failed",
                      "split-7": "awaiting", "payout-9": "dead",
                      "ride-request-0.7.0": "failed"}
    assert keys(admin.list(states="failed").runs) == ["ride-request-0.7.0", "ride-3"]
    assert keys(admin.list(states=["dead", "awaiting"]).runs) == ["payout-9", "split-7"]
    assert keys(admin.list(states="finished", order="asc").runs) == ["ride-1", "ride-2"]
    assert keys(admin.list(job="RideCreate", states="failed").runs) == ["ride-3"]
    assert keys(admin.list(key_prefix="ride-").runs) == ["ride-request-0.7.0", "ride-3",
                                                          "ride-2", "ride-1"]
    # the 0.7.0 row was last updated on 2026-11-30 08:15 UTC
    assert keys(admin.list(older_than=timedelta(hours=1)).runs) == ["ride-request-0.7.0"]
    assert "ride-request-0.7.0" not in keys(
        admin.list(since=datetime.now(timezone.utc) - timedelta(hours=1)).runs)
    assert keys(admin.list(since=datetime(2026, 11, 30, 8, 15)).runs)[0] == "ride-request-0.7.0"

    # pages of 2, newest first, by cursor: every run once
    seen: List[str] = []
    cursor = None
    while True:
        page = admin.list(limit=2, cursor=cursor)
        assert len(page.runs) <= 2
        seen += keys(page.runs)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == keys(everything.runs)
    assert keys(admin.runs(limit=4, order="asc")) == list(reversed(seen))

    failed = next(r for r in everything.runs if r.key == "ride-3")
    assert failed.job_name == "RideCreate" and failed.recovery_point == "charge"
    assert failed.error_class is not None and failed.error_class.endswith("CardDeclined")
    assert failed.error_message == "Your card was declined (ride 3)"
    assert failed.attempts == 1 and failed.locked_at is None
    assert failed.updated_at is not None and failed.updated_at.tzinfo is not None
    with pytest.raises(acidic_job.InvalidArgument, match="failed"):
        admin.list(states="broken")


def test_show_reads_steps_errors_attributes_and_batches(dbenv: Any,
                                                        shop: shop_app.App) -> None:
    admin = admin_for(dbenv)
    failed = admin.show("ride-3")
    assert [(s.name, s.state) for s in failed.steps] == [
        ("create_ride", "done"), ("charge", "current"), ("send_receipt", "pending")]
    assert failed.error is not None and failed.error.format == "json"
    assert failed.error.class_name is not None
    assert failed.error.class_name.endswith("CardDeclined")
    assert failed.error.message == "Your card was declined (ride 3)"
    assert failed.attributes_format == "json"
    ride_id = json.loads(failed.attributes or "")["ride_id"]
    assert dbenv.sql("SELECT rider FROM rides WHERE id = ?", (ride_id,)) == [(3,)]
    assert json.loads(failed.attributes_pretty() or "") == {"ride_id": ride_id}
    assert failed.resume is not None and failed.resume.adapter == "shop"
    assert failed.resume.job_name == "shop.resume"
    assert json.loads(failed.job_args or "") == {"origin": "Tegel", "rider": 3}
    assert admin.show(failed.run.id) == failed  # by id

    # 0.7.0's row: YAML of classes this process does not have, read as text
    old = admin.show("ride-request-0.7.0")
    assert old.run.state == "failed" and old.run.attempts == 0
    assert old.error is not None and old.error.format == "yaml"
    assert old.error.class_name == "Stripe::CardError"
    assert old.error.message == "Your card was declined."
    assert old.error.backtrace[0] == "app/jobs/ride_create_job.rb:24:in `create_stripe_charge'"
    assert old.attributes_format == "yaml" and "!ruby/object:Ride" in (old.attributes or "")
    assert old.attributes_pretty() == old.attributes  # shown as stored, never loaded
    assert old.steps == () and old.resume is None

    awaiting = admin.show("split-7")
    assert awaiting.run.state == "awaiting"
    assert [(s.name, s.state, s.awaits) for s in awaiting.steps] == [
        ("split", "done", ("shop.charge_share",)), ("settle", "current", ())]
    assert awaiting.batch is not None and awaiting.batch.remaining == 1
    assert awaiting.batch.step == "split" and awaiting.batch.continuation_adapter == "shop"
    assert awaiting.run.awaiting_batch_id == awaiting.batch.id
    [child] = awaiting.staged
    assert child.job_name == "shop.charge_share" and child.batch_id == awaiting.batch.id
    assert child.run_id == awaiting.run.id and json.loads(child.payload or "")["args"] == [7]

    with pytest.raises(acidic_job.NotFound):
        admin.show("no-such-run")


def test_stats_count_states_and_jobs(dbenv: Any, shop: shop_app.App) -> None:
    admin = admin_for(dbenv)
    assert admin.driver == ("sqlite" if dbenv.group == "sqlite" else "postgres")
    stats = admin.stats()
    assert stats.total == 6
    assert {(c.state, c.count) for c in stats.states} == {
        ("succeeded", 2), ("failed", 2), ("awaiting", 1), ("dead", 1)}
    assert stats.count("failed") == 2 and stats.count("running") == 0
    assert {(j.job_name, j.state, j.count) for j in stats.jobs} == {
        ("RideCreate", "succeeded", 2), ("RideCreate", "failed", 1),
        ("RideCreateJob", "failed", 1), ("SplitFare", "awaiting", 1), ("Payout", "dead", 1)}
    assert stats.oldest_stranded is None
    assert stats.staged_backlog == 1 and stats.open_batches == 1  # split-7's awaited job
    assert stats.oldest_staged is not None
    assert stats.oldest_staged.job_name == "shop.charge_share"
    assert stats.oldest_batch is not None and stats.oldest_batch.remaining == 1


def test_results_serialize_to_the_dashboard_api(dbenv: Any, shop: shop_app.App) -> None:
    admin = admin_for(dbenv)
    page = admin.list(limit=1).to_json()
    assert set(page) == {"runs", "next_cursor"}
    run = page["runs"][0]
    assert set(run) == {"id", "key", "job_name", "state", "recovery_point", "attempts",
                        "locked_at", "locked_by", "error_class", "error_message",
                        "updated_at", "created_at", "last_run_at", "recover_at", "dead_at",
                        "awaiting_batch_id"}
    assert datetime.strptime(run["updated_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    detail = admin.show("split-7").to_json()
    assert set(detail) == {"run", "job_args", "attributes", "attributes_format", "steps",
                           "error", "staged", "batch", "resume"}
    assert set(detail["steps"][0]) == {"name", "state", "awaits"}
    assert set(detail["staged"][0]) == {"id", "adapter", "job_name", "payload", "run_id",
                                        "batch_id", "created_at", "delivered_at"}
    assert set(detail["batch"]) == {"id", "run_id", "step", "remaining",
                                    "continuation_adapter", "continuation_job_name",
                                    "created_at", "updated_at"}
    assert set(detail["resume"]) == {"adapter", "job_name", "payload"}
    error = admin.show("ride-3").to_json()["error"]
    assert set(error) == {"format", "class_name", "message", "summary", "backtrace"}
    stats = admin.stats().to_json()
    assert set(stats) == {"total", "states", "jobs", "oldest_stranded", "staged_backlog",
                          "oldest_staged", "open_batches", "oldest_batch"}
    assert stats["states"][0].keys() == {"state", "count"}
    assert set(stats["jobs"][0]) == {"job_name", "state", "count"}
    json.dumps([page, detail, stats])  # plain JSON values only


# --- acting ------------------------------------------------------------------------------

def test_retry_resumes_a_failed_run_at_its_step(dbenv: Any, shop: shop_app.App) -> None:
    admin = admin_for(dbenv)
    run = admin.retry("ride-3")
    assert run.state == "queued" and run.recovery_point == "charge"
    assert run.error_class is None and run.attempts == 0
    # the resume job went through the application's queue (its adapter is installed here)
    assert [r[0] for r in dbenv.sql("SELECT job_name FROM shop_queue")] == [
        "shop.charge_share", "shop.resume"]
    assert shop.work() == ["shop.charge_share", True, True]  # split-7 finishes too
    assert admin.get("ride-3").state == "succeeded"
    assert rides_of(dbenv, 3) == 1  # create_ride did not run again
    assert receipts_of(dbenv, shop, "ride-3") == 1
    with pytest.raises(acidic_job.ActionNotApplicable, match="succeeded"):
        admin.retry("ride-3")


def test_reset_reruns_a_step_whose_writes_then_exist_once_more(dbenv: Any,
                                                               shop: shop_app.App) -> None:
    admin = admin_for(dbenv)
    assert rides_of(dbenv, 1) == 1 and receipts_of(dbenv, shop, "ride-1") == 1
    run = admin.reset("ride-1", "create_ride")
    assert run.state == "queued" and run.recovery_point == "create_ride"
    dbenv.sql("DELETE FROM shop_queue WHERE job_name = 'shop.charge_share'")
    assert shop.work() == [True]
    assert admin.get("ride-1").state == "succeeded"
    assert rides_of(dbenv, 1) == 2  # the step ran again: its insert exists once more
    assert receipts_of(dbenv, shop, "ride-1") == 1  # of the new ride (the attribute moved)
    assert dbenv.sql("SELECT count(*) FROM receipts")[0][0] == 3  # ride-1 twice, ride-2

    admin.reset("ride-1", "send_receipt")  # forward: only the last step runs again
    assert shop.work() == [True]
    assert rides_of(dbenv, 1) == 2 and receipts_of(dbenv, shop, "ride-1") == 2

    with pytest.raises(acidic_job.UnknownRecoveryPoint, match="refund"):
        admin.reset("ride-1", "refund")
    with pytest.raises(acidic_job.UnknownRecoveryPoint, match="no workflow"):
        admin.reset("ride-request-0.7.0", "create_stripe_charge")  # 0.7.0 recorded none


def test_actions_refuse_what_does_not_apply_and_change_nothing(dbenv: Any,
                                                               shop: shop_app.App) -> None:
    admin = admin_for(dbenv)
    before = admin.list().runs
    with pytest.raises(acidic_job.ActionNotApplicable):
        admin.retry("ride-1")        # finished
    with pytest.raises(acidic_job.ActionNotApplicable):
        admin.retry("split-7")       # awaiting
    with pytest.raises(acidic_job.ActionNotApplicable):
        admin.unlock("ride-3")       # not locked
    with pytest.raises(acidic_job.ActionNotApplicable, match="resume"):
        admin.retry("ride-request-0.7.0")  # 0.7.0 recorded no resume job
    with pytest.raises(acidic_job.NotFound):
        admin.discard("ride-404")
    with pytest.raises(acidic_job.NotFound):
        admin.retry(10 ** 9)
    assert admin.list().runs == before
    assert isinstance(acidic_job.ActionNotApplicable("x"), acidic_job.Error)

    # the application enqueues a 0.7.0 run itself: the row is cleared, nothing staged
    run = admin.retry("ride-request-0.7.0", enqueue=False)
    assert run.state == "queued" and run.error_class is None
    assert dbenv.sql("SELECT count(*) FROM staged_acidic_jobs")[0][0] == 1  # split-7's only


def test_discard_finishes_a_run_that_then_never_runs_again(dbenv: Any,
                                                           shop: shop_app.App) -> None:
    admin = admin_for(dbenv)
    run = admin.discard("ride-3")
    assert run.state == "discarded" and run.recovery_point == "FINISHED"
    assert run.error_class is not None and run.error_class.endswith("CardDeclined")
    with pytest.raises(acidic_job.ActionNotApplicable):
        admin.discard("ride-3")
    shop.ride(3, "Tegel")  # its job delivered again: nothing runs
    assert admin.get("ride-3").state == "discarded"
    assert rides_of(dbenv, 3) == 1 and dbenv.sql(
        "SELECT count(*) FROM receipts")[0][0] == 2
    discarded = admin.discard("split-7")  # an awaiting run stops awaiting
    assert discarded.state == "discarded" and discarded.error_class == "acidic_job.Discarded"
    assert discarded.awaiting_batch_id is None and admin.show("split-7").batch is None


def test_a_live_lock_held_by_a_worker_process_is_refused(dbenv: Any, shop: shop_app.App,
                                                         workers: List[Worker]) -> None:
    worker = Worker(dbenv, 5)
    workers.append(worker)
    admin = admin_for(dbenv, lock_timeout=60)
    running = admin.get("ride-5")
    assert running.state == "running" and running.recovery_point == "charge"
    assert running.locked_by is not None and running.locked_by.endswith(f":{worker.proc.pid}")
    # SQLite: the lock is live, a forced action would take it; PostgreSQL: the worker's
    # store holds the run's row for its whole step
    refusal = "force" if dbenv.url.startswith("sqlite:") else "held by a transaction"
    for action in (lambda: admin.retry("ride-5"), lambda: admin.unlock("ride-5"),
                   lambda: admin.discard("ride-5"), lambda: admin.reset("ride-5", "create_ride")):
        with pytest.raises(acidic_job.LockedIdempotencyKey, match=refusal):
            action()
    assert admin.get("ride-5") == running
    shop.switch("hang-5", False)
    if dbenv.url.startswith("sqlite:"):
        # forced: the worker's next claim misses, so its step writes nothing
        assert admin.discard("ride-5", force=True).state == "discarded"
        code, err = worker.release()
        assert code != 0 and "LockedIdempotencyKey" in err
        assert admin.get("ride-5").state == "discarded"
        assert receipts_count(dbenv) == 2  # ride-1, ride-2: ride-5's never
    else:
        # the worker's store holds the run's row for the whole step: even forced, the
        # operator hears at once that it is busy
        with pytest.raises(acidic_job.LockedIdempotencyKey):
            admin.discard("ride-5", force=True)
        assert worker.release()[0] == 0  # the step went on and the run finished
        assert admin.get("ride-5").state == "succeeded"


def receipts_count(env: Any) -> int:
    return env.sql("SELECT count(*) FROM receipts")[0][0]


def test_a_worker_killed_mid_step_strands_its_run_until_unlocked_and_recovered(
        dbenv: Any, shop: shop_app.App, workers: List[Worker]) -> None:
    worker = Worker(dbenv, 4)
    workers.append(worker)
    worker.kill()
    shop.switch("hang-4", False)
    admin = admin_for(dbenv, lock_timeout=1)
    time.sleep(1.2)  # the lock timeout
    [stranded] = admin.list(states="stranded").runs
    assert stranded.key == "ride-4" and stranded.recovery_point == "charge"
    assert admin.stats().oldest_stranded == stranded
    deadline = time.monotonic() + 30
    while True:  # PostgreSQL ends the killed worker's session (and its row lock) on its own
        try:
            assert admin.unlock("ride-4").state == "queued"
            break
        except acidic_job.LockedIdempotencyKey:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert admin.recover() == acidic_job.Recovered(1, 0)
    dbenv.sql("DELETE FROM shop_queue WHERE job_name = 'shop.charge_share'")
    assert shop.work() == [True]
    assert admin.get("ride-4").state == "succeeded"
    assert rides_of(dbenv, 4) == 1  # committed before the kill, not run again


def test_drain_sends_what_no_adapter_could(dbenv: Any, shop: shop_app.App) -> None:
    class Down(shop_app.TableQueue):
        def send(self, staged_id: int, job_name: str, payload: Any) -> None:
            raise ConnectionError("the queue is down")

    acidic_job.adapters.install_adapter(Down(dbenv.url))
    admin = admin_for(dbenv)
    admin.retry("ride-3")
    assert dbenv.sql("SELECT count(*) FROM shop_queue WHERE job_name = 'shop.resume'") == [(0,)]
    acidic_job.adapters.install_adapter(shop.queue)
    assert admin.drain(older_than=0) == 2  # the resume job and split-7's awaited job
    assert dbenv.sql("SELECT count(*) FROM shop_queue WHERE job_name = 'shop.resume'") == [(1,)]


def test_prune_deletes_finished_runs_older_than_an_age(dbenv: Any, shop: shop_app.App) -> None:
    admin = admin_for(dbenv)
    admin.discard("ride-3")
    assert admin.prune(timedelta(days=7)) == 0
    calls: List[Tuple[int, int]] = []
    deleted = admin.prune(datetime.now(timezone.utc) + timedelta(seconds=1), states="succeeded",
                          batch_size=1, progress=lambda done, total: calls.append((done, total)))
    assert deleted == 2 and calls[-1] == (2, 2)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert keys(admin.list(states="finished").runs) == ["ride-3"]
    assert admin.prune(0.0) == 1
    assert keys(admin.list().runs) == ["ride-request-0.7.0", "payout-9", "split-7"]
    with pytest.raises(acidic_job.InvalidArgument):
        admin.prune(0.0, states="failed")


def test_bulk_actions_by_filter_and_by_ids(dbenv: Any, shop: shop_app.App) -> None:
    admin = admin_for(dbenv)
    # failed and dead by default; the 0.7.0 row has no resume job and is skipped
    assert admin.bulk("retry") == BulkResult(changed=2, skipped=1)
    assert {r.key for r in admin.list(states="queued").runs} == {"ride-3", "payout-9"}
    ids = [admin.get("ride-1").id, admin.get("ride-request-0.7.0").id]
    assert admin.bulk("discard", ids=ids) == BulkResult(changed=1, skipped=1)
    assert admin.get("ride-request-0.7.0").state == "discarded"
    with pytest.raises(acidic_job.InvalidArgument):
        admin.bulk("retry", states="running")  # needs force
    with pytest.raises(acidic_job.InvalidArgument):
        admin.bulk("explode")
    assert parse_states("failed,dead") == parse_states(["dead", "failed"])


@pytest.mark.parametrize("batch", [100])
def test_bulk_retry_of_1000_failed_runs(url_env: Any, batch: int) -> None:
    env = url_env
    app = make_app(env.url)
    app.switch("card_declined")
    for rider in range(1000):
        with pytest.raises(shop_app.CardDeclined):
            app.ride(rider)
    app.switch("card_declined", False)
    admin = url_admin(env.url, lock_timeout=60)
    assert admin.stats().count("failed") == 1000
    calls: List[Tuple[int, int]] = []
    result = admin.bulk("retry", job="RideCreate", states="failed", batch_size=batch,
                        progress=lambda done, total: calls.append((done, total)))
    assert result == BulkResult(changed=1000, skipped=0)
    assert len(calls) >= 1000 // batch and calls[-1] == (1000, 1000)
    assert admin.stats().count("queued") == 1000
    assert env.sql("SELECT count(*) FROM shop_queue WHERE job_name = 'shop.resume'") == [(1000,)]
    assert app.work() == [True] * 1000
    assert admin.stats().count("succeeded") == 1000
    assert env.sql("SELECT count(*) FROM rides")[0][0] == 1000  # each ride created once
    assert env.sql("SELECT count(*) FROM receipts")[0][0] == 1000


def test_an_exception_in_progress_stops_a_bulk_action_after_its_transaction(
        url_env: Any) -> None:
    env = url_env
    app = make_app(env.url)
    app.switch("card_declined")
    for rider in range(30):
        with pytest.raises(shop_app.CardDeclined):
            app.ride(rider)
    admin = url_admin(env.url)

    def stop(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        admin.bulk("retry", batch_size=10, progress=stop)
    assert admin.stats().count("queued") == 10  # the first transaction stays committed
    assert admin.stats().count("failed") == 20


def test_parse_error_reads_documents_without_loading_them() -> None:
    e = parse_error(shop_app.ERROR_070)
    assert (e.format, e.class_name, e.message) == ("yaml", "Stripe::CardError",
                                                    "Your card was declined.")
    assert e.summary == "Stripe::CardError: Your card was declined."
    assert len(e.backtrace) == 2
    j = parse_error('{"class": "builtins.ValueError", "message": "no\\nfunds"}')
    assert (j.format, j.class_name, j.message) == ("json", "builtins.ValueError", "no\nfunds")
    assert parse_error(b"\xff plain").format == "text"


def test_run_values_are_frozen() -> None:
    run = Run(1, "k", "J", "failed", "a", 0, None, None, None, None, None, None, None, None,
              None, None)
    with pytest.raises(Exception):
        run.state = "succeeded"  # type: ignore[misc]
