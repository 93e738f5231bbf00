"""A small application for the operator tests (test_admin.py, test_cli.py) and the
README's ``acidic-job`` output: rides booked by a workflow, and a queue of the
application's own that keeps its jobs in a table of the same database (an adapter as an
application may write one: ``acidic_job.adapters.Adapter``, installed by this module).

Importing it with ``SHOP_DATABASE_URL`` set defines the workflows on that database and
installs the queue, as an application's tasks module does (``acidic-job --import
shop_app``). Tests call :func:`make` for a database of their own.

    python shop_app.py URL seed       runs in every state (see seed)
    python shop_app.py URL hang RIDER a worker booking ride-RIDER, in the middle of its
                                      charge step: prints IN_STEP, blocks until killed
    python shop_app.py URL work       perform the queued jobs, print what each returned
"""
from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

import acidic_job
import acidic_job.adapters
import acidic_job.queues

#: the workers' lock timeout (seconds); the operator passes the same one
LOCK_TIMEOUT = float(os.environ.get("SHOP_LOCK_TIMEOUT", "90"))

TABLES = [
    "CREATE TABLE IF NOT EXISTS rides (id INTEGER PRIMARY KEY, rider INTEGER, origin TEXT)",
    "CREATE TABLE IF NOT EXISTS receipts (ride_id INTEGER)",
    "CREATE TABLE IF NOT EXISTS switches (name TEXT)",
    "CREATE TABLE IF NOT EXISTS shop_queue (staged_id INTEGER, job_name TEXT, payload TEXT)",
]


def connect(url: str) -> Any:
    """A plain autocommit connection of the application (its own driver)."""
    if url.startswith("sqlite:"):
        import sqlite3
        return sqlite3.connect(url[len("sqlite:"):], isolation_level=None, timeout=30)
    import psycopg
    return psycopg.connect(url, autocommit=True)


#: the application's connections, one per database, process and thread
_connections: Dict[Tuple[str, int, int], Any] = {}


def sql(url: str, text: str, params: tuple = ()) -> List[tuple]:
    """Run one statement (``?`` placeholders) on the application's connection."""
    where = (url, os.getpid(), threading.get_ident())
    conn = _connections.get(where)
    if conn is None:
        conn = _connections[where] = connect(url)
    if not url.startswith("sqlite:"):
        text = text.replace("?", "%s").replace("INTEGER PRIMARY KEY", "SERIAL PRIMARY KEY")
    cur = conn.execute(text, params)
    return cur.fetchall() if cur.description else []


class CardDeclined(Exception):
    pass


class TableQueue(acidic_job.adapters.Adapter):
    """The application's queue: a job is a row of shop_queue; :func:`work` performs them."""

    name = "shop"

    def __init__(self, url: str) -> None:
        super().__init__(url, LOCK_TIMEOUT)
        self.url = url

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        sql(self.url, "INSERT INTO shop_queue (staged_id, job_name, payload) VALUES (?, ?, ?)",
            (staged_id, job_name, json.dumps(payload)))

    def continuation(self) -> str:
        return "shop.resume"


class Job:
    """A job of the shop queue that a step can await."""

    def __init__(self, name: str) -> None:
        self.__acidic_job_adapter__ = ("shop", name)


charge_share = Job("shop.charge_share")


class App:
    """The workflows of one database."""

    def __init__(self, url: str) -> None:
        self.url = url
        for statement in TABLES:
            sql(url, statement)
        self.queue = acidic_job.adapters.install_adapter(TableQueue(url))

        def switch(tx: Any, name: str) -> bool:
            tx.execute("SELECT count(*) FROM switches WHERE name = ?", (name,))
            return bool(tx.fetchone()[0])

        def maybe_hang(tx: Any, rider: int) -> None:
            if switch(tx, f"hang-{rider}"):
                print("IN_STEP", flush=True)
                sys.stdin.read()  # until killed

        class RideCreate(acidic_job.Workflow, database=url, name="RideCreate",
                         lock_timeout=LOCK_TIMEOUT):
            ride_id: Optional[int] = None

            def __init__(self, rider: int, origin: str) -> None:
                self.rider, self.origin = rider, origin

            @acidic_job.step
            def create_ride(self, tx: acidic_job.Cursor) -> None:
                tx.execute("INSERT INTO rides (rider, origin) VALUES (?, ?) RETURNING id",
                           (self.rider, self.origin))
                self.ride_id = tx.fetchone()[0]

            @acidic_job.step
            def charge(self, tx: acidic_job.Cursor) -> None:
                maybe_hang(tx, self.rider)
                if switch(tx, "card_declined"):
                    raise CardDeclined(f"Your card was declined (ride {self.ride_id})")

            @acidic_job.step
            def send_receipt(self, tx: acidic_job.Cursor) -> None:
                tx.execute("INSERT INTO receipts (ride_id) VALUES (?)", (self.ride_id,))

        class SplitFare(acidic_job.Workflow, database=url, name="SplitFare",
                        lock_timeout=LOCK_TIMEOUT):
            def __init__(self, ride: int) -> None:
                self.ride = ride

            @acidic_job.step(awaits=[charge_share])
            def split(self) -> Any:
                return {charge_share: (self.ride,)}

            @acidic_job.step
            def settle(self, tx: acidic_job.Cursor) -> None:
                tx.execute("INSERT INTO receipts (ride_id) VALUES (?)", (self.ride,))

        class Payout(acidic_job.Workflow, database=url, name="Payout", max_attempts=1,
                     lock_timeout=LOCK_TIMEOUT):
            def __init__(self, driver: int) -> None:
                self.driver = driver

            @acidic_job.step
            def transfer(self) -> None:
                raise RuntimeError(f"the bank refused the transfer to driver {self.driver}")

        self.RideCreate, self.SplitFare, self.Payout = RideCreate, SplitFare, Payout

    def close(self) -> None:
        """Close every connection of this application (its workflows' stores, its queue's,
        its own), in this thread."""
        for cls in (self.RideCreate, self.SplitFare, self.Payout):
            cls.__acidic_workflow__.database.close()
        if self.queue.database is not None:
            self.queue.database.close()
        for where in [w for w in _connections if w[0] == self.url]:
            _connections.pop(where).close()

    # -- running the application's jobs -------------------------------------------
    def ride(self, rider: int, origin: str = "Alexanderplatz", key: Optional[str] = None
             ) -> bool:
        """Book a ride as the queue's job does (recoverable through the shop queue)."""
        with acidic_job.recoverable("shop"):
            return self.RideCreate.run(rider, origin, key=key or f"ride-{rider}")

    def switch(self, name: str, on: bool = True) -> None:
        sql(self.url, "DELETE FROM switches WHERE name = ?", (name,))
        if on:
            sql(self.url, "INSERT INTO switches (name) VALUES (?)", (name,))

    def work(self) -> List[Any]:
        """Be the queue's worker: perform every queued job (those the jobs queue too),
        acknowledge what succeeded; what each returned or raised, in order."""
        results: List[Any] = []
        while True:
            rows = sql(self.url, "SELECT staged_id, job_name, payload FROM shop_queue "
                                 "ORDER BY staged_id LIMIT 1")
            if not rows:
                return results
            staged_id, job_name, payload = rows[0]
            sql(self.url, "DELETE FROM shop_queue WHERE staged_id = ?", (staged_id,))
            doc = json.loads(payload)
            try:
                if job_name == "shop.resume":
                    with acidic_job.recoverable("shop"):
                        results.append(acidic_job.queues.resume(doc["args"][0]))
                else:
                    results.append(job_name)
            except Exception as exc:  # a failed job is not acknowledged, as in a queue
                results.append(exc)
            else:
                acidic_job.ack(staged_id, adapter="shop")  # the queue's database, opened once

    def seed(self) -> Dict[str, str]:
        """Runs of every kind, by real workflows (and one 0.7.0 row, as that version wrote
        them): ride-1, ride-2 succeeded; ride-3 failed at charge (card declined); split-7
        awaiting its charge_share job; payout-9 dead; and a 0.7.0 Ruby run failed with a
        Stripe::CardError. Stranded runs need a killed worker: see :func:`hang`."""
        self.ride(1)
        self.ride(2, "Hauptbahnhof")
        self.switch("card_declined")
        try:
            self.ride(3, "Tegel")
        except CardDeclined:
            pass
        self.switch("card_declined", False)
        with acidic_job.recoverable("shop"):
            self.SplitFare.run(7, key="split-7")
            try:
                self.Payout.run(9, key="payout-9")
            except RuntimeError:
                pass
        insert_070_row(self.url)
        return {"succeeded": "ride-1", "failed": "ride-3", "awaiting": "split-7",
                "dead": "payout-9", "failed_070": "ride-request-0.7.0"}


#: what acidic_job 0.7.0 wrote for a run whose Stripe call failed (Psych's YAML of the
#: exception and of the attributes)
ERROR_070 = """--- !ruby/exception:Stripe::CardError
message: Your card was declined.
backtrace:
- app/jobs/ride_create_job.rb:24:in `create_stripe_charge'
- acidic_job (0.7.0) lib/acidic_job.rb:187:in `block in atomic_phase'
http_status: 402
code: card_declined
"""
ATTRS_070 = """---
ride: !ruby/object:Ride
  attributes:
    id: 12
    origin: Alexanderplatz
    target: BER Airport
"""


def insert_070_row(url: str) -> None:
    """A row as acidic_job 0.7.0 left it (times as ActiveRecord writes datetime(6)): keyed
    by key, job and arguments, no attempts, no workflow document, YAML documents of
    classes this process does not have."""
    sql(url, "INSERT INTO acidic_job_keys (idempotency_key, job_name, job_args, last_run_at, "
             "recovery_point, error_object, attr_accessors, created_at, updated_at) VALUES "
             "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("ride-request-0.7.0", "RideCreateJob", "---\n- 42\n", "2026-11-30 08:15:00.412345",
         "create_stripe_charge", ERROR_070, ATTRS_070, "2026-11-30 08:14:59.903112",
         "2026-11-30 08:15:00.412345"))


def make(url: str) -> App:
    return App(url)


if os.environ.get("SHOP_DATABASE_URL"):
    app = make(os.environ["SHOP_DATABASE_URL"])


if __name__ == "__main__":
    url, command = sys.argv[1], sys.argv[2]
    shop = make(url)
    if command == "seed":
        print(json.dumps(shop.seed()))
    elif command == "hang":
        rider = int(sys.argv[3])
        shop.switch(f"hang-{rider}")
        shop.ride(rider, "Ostkreuz")
    elif command == "work":
        print(json.dumps([r if isinstance(r, (bool, str)) else repr(r) for r in shop.work()]))
    else:
        raise SystemExit(f"unknown command {command!r}")


#: applications and Admins a test opened; conftest.py closes them after each test
#: (PostgreSQL has a connection limit)
opened: List[Any] = []


def make_tracked(url: str) -> "App":
    """make(url), closed after the test."""
    app = make(url)
    opened.append(app)
    return app
