"""The ride-booking job of acidic_job's README, in Python, on an embedded SQLite file.

    python ride_booking.py --db build/demo/python-rides.db --stripe-fails   # Stripe is down
    python ride_booking.py --db build/demo/python-rides.db                  # the retry

The first run creates the ride and its audit record (step 1 commits), then the Stripe call
fails in step 2: the step's writes roll back, the error is recorded on the run and the
exception propagates, as it would to a queue that retries the job. The retry (same
arguments, so the same idempotency key) resumes at step 2: no second ride.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import Any, Dict, List, Optional

import acidic_job
from acidic_job.adapters import Adapter, install_adapter

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--db", required=True, help="SQLite file")
parser.add_argument("--stripe-fails", action="store_true", help="the payment provider is down")
options = parser.parse_args()
DB_URL = f"sqlite:{options.db}"

app = sqlite3.connect(options.db, isolation_level=None)
app.executescript("""
    CREATE TABLE IF NOT EXISTS rides (id INTEGER PRIMARY KEY, user_id INTEGER, origin TEXT,
                                      target TEXT, stripe_charge_id TEXT);
    CREATE TABLE IF NOT EXISTS audit_records (id INTEGER PRIMARY KEY, action TEXT,
                                              ride_id INTEGER);
""")
# acidic_job's own tables are created by the core when the store opens.


class Stripe:
    """A stand-in for the Stripe API: a foreign state mutation that can fail."""

    class APIConnectionError(Exception):
        pass

    @staticmethod
    def charge(amount: int, ride_id: int) -> str:
        if options.stripe_fails:
            raise Stripe.APIConnectionError("could not connect to api.stripe.com")
        return f"ch_{ride_id}_{amount}"


# A tiny in-process queue standing in for Celery/RQ: jobs staged by a step are handed to
# it after the step commits; the script performs them afterwards and acknowledges them.
class SendReceipt:
    __acidic_job_adapter__ = ("demo", "send_receipt")

    @staticmethod
    def perform(ride_id: int) -> None:
        print(f"    [send_receipt job] receipt for ride #{ride_id} sent "
              "(it was handed over after the step committed)")


class DemoQueue(Adapter):
    name = "demo"

    def __init__(self) -> None:
        super().__init__(DB_URL)
        self.pending: List[Any] = []

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        self.pending.append((staged_id, payload))

    def work(self) -> None:
        while self.pending:
            staged_id, payload = self.pending.pop(0)
            SendReceipt.perform(*payload["args"])
            acidic_job.ack(staged_id, DB_URL)


queue = install_adapter(DemoQueue())


def say(text: str) -> None:
    print(f"    [step] {text}")


class RideCreate(acidic_job.Workflow, database=DB_URL, name="RideCreate"):
    ride_id: Optional[int] = None  # persisted with each step, read back on resume

    def __init__(self, user_id: int, params: Dict[str, str]) -> None:
        self.user_id = user_id
        self.params = params

    @acidic_job.step
    def create_ride_and_audit_record(self, tx: Any) -> None:
        tx.execute("INSERT INTO rides (user_id, origin, target) VALUES (?, ?, ?) RETURNING id",
                   (self.user_id, self.params["origin"], self.params["target"]))
        self.ride_id = tx.fetchone()[0]
        tx.execute("INSERT INTO audit_records (action, ride_id) VALUES (?, ?)",
                   ("ride.created", self.ride_id))
        say(f"create_ride_and_audit_record: created ride #{self.ride_id} "
            f"({self.params['origin']} -> {self.params['target']})")

    @acidic_job.step
    def create_stripe_charge(self, tx: Any) -> None:
        tx.execute("INSERT INTO audit_records (action, ride_id) VALUES (?, ?)",
                   ("charge.attempted", self.ride_id))
        say(f"create_stripe_charge: charging ride #{self.ride_id}...")
        charge_id = Stripe.charge(amount=20_00, ride_id=self.ride_id)
        tx.execute("UPDATE rides SET stripe_charge_id = ? WHERE id = ?", (charge_id, self.ride_id))
        say(f"create_stripe_charge: charged, {charge_id}")

    @acidic_job.step
    def send_receipt(self, tx: Any) -> None:
        acidic_job.perform_transactionally(SendReceipt, self.ride_id)
        say("send_receipt: receipt job staged in this step's transaction")


def report() -> None:
    rides = app.execute("SELECT id, stripe_charge_id FROM rides").fetchall()
    audits = [r[0] for r in app.execute("SELECT action FROM audit_records ORDER BY id")]
    point, locked, error = app.execute(
        "SELECT recovery_point, locked_at, error_object FROM acidic_job_keys").fetchone()
    err = json.loads(error) if error else None
    print("  database now:")
    print(f"    rides:          {len(rides)} {rides}")
    print(f"    audit records:  {audits}")
    print(f"    run (acidic_job_keys): recovery point {point!r}, locked: {locked is not None}, "
          f"error: {err['class'] + ': ' + err['message'] if err else 'none'}")
    staged = app.execute("SELECT count(*) FROM staged_acidic_jobs").fetchone()[0]
    print(f"    staged jobs waiting: {staged}")


print("  performing RideCreate(user_id=42, origin='Kings Cross', target='Heathrow')")
status = 0
try:
    result = RideCreate.run(42, {"origin": "Kings Cross", "target": "Heathrow"})
    print(f"  run returned {result}")
    queue.work()
except Stripe.APIConnectionError as exc:
    print(f"  run raised {type(exc).__name__}: {exc}")
    print("  (a queue would retry the job later)")
    status = 0 if options.stripe_fails else 1
report()
sys.exit(status)
