"""The ride-booking job of acidic_job's README, in Python, on an embedded SQLite file.

examples/c and examples/ruby tell the same story with the same data, line for line.

    python ride_booking.py --db build/demo/python-rides.db --stripe-fails   # Stripe is down
    python ride_booking.py --db build/demo/python-rides.db                  # the retry

The first run creates the ride and its audit record (step 1 commits), then the Stripe call
fails in step 2: the step's writes roll back, the error is recorded on the run and the
exception propagates, as it would to a queue that retries the job. The retry (the same
idempotency key) resumes at step 2: no second ride.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import Any, Dict, Optional

import acidic_job
from acidic_job.adapters import Adapter, install_adapter

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--db", required=True, help="SQLite file")
parser.add_argument("--stripe-fails", action="store_true", help="the payment provider is down")
options = parser.parse_args()
DB_URL = f"sqlite:{options.db}"
KEY = "ride-request-42"

app = sqlite3.connect(options.db, isolation_level=None)
app.executescript("""
    CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT);
    INSERT OR IGNORE INTO users (id, name) VALUES (42, 'Ada');
    CREATE TABLE IF NOT EXISTS rides (id INTEGER PRIMARY KEY, user_id INTEGER, origin TEXT,
                                      target TEXT, stripe_charge_id TEXT);
    CREATE TABLE IF NOT EXISTS audit_records (id INTEGER PRIMARY KEY, action TEXT,
                                              ride_id INTEGER);
""")
# acidic_job's own tables are created by the core when the store opens.


class APIConnectionError(Exception):
    pass


class Stripe:
    """A stand-in for the Stripe API: a foreign state mutation that can fail."""

    @staticmethod
    def charge(amount: int, ride_id: int) -> str:
        if options.stripe_fails:
            print("        Stripe: could not connect to api.stripe.com")
            raise APIConnectionError("could not connect to api.stripe.com")
        charge_id = f"ch_{ride_id}_{amount}"
        print(f"        Stripe: charged, {charge_id}")
        return charge_id


class RideMailer:
    """The receipt, a job of the demo queue below."""

    __acidic_job_adapter__ = ("demo", "RideMailer.confirm_charge")

    @staticmethod
    def confirm_charge(ride_id: int) -> None:
        print(f"        queue: RideMailer.confirm_charge for ride #{ride_id} performed, "
              "receipt sent")


class DemoQueue(Adapter):
    """A queue standing in for Celery/RQ: performs a job as soon as it gets it (after the
    step that staged it committed); the script acknowledges it when the run is done."""

    name = "demo"

    def __init__(self) -> None:
        super().__init__(DB_URL)
        self.performed: list[int] = []

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        RideMailer.confirm_charge(*payload["args"])
        self.performed.append(staged_id)

    def acknowledge(self) -> None:
        while self.performed:
            acidic_job.ack(self.performed.pop(0), DB_URL)


queue = install_adapter(DemoQueue())


class RideCreate(acidic_job.Workflow, database=DB_URL, name="RideCreateJob"):
    ride_id: Optional[int] = None  # persisted with each step, read back on resume

    def __init__(self, user_id: int, params: Dict[str, str]) -> None:
        self.user_id, self.params = user_id, params

    @acidic_job.step
    def create_ride_and_audit_record(self, tx: Any) -> None:
        tx.execute("INSERT INTO rides (user_id, origin, target) VALUES (?, ?, ?) RETURNING id",
                   (self.user_id, self.params["origin"], self.params["target"]))
        self.ride_id = tx.fetchone()[0]
        tx.execute("INSERT INTO audit_records (action, ride_id) VALUES ('ride.created', ?)",
                   (self.ride_id,))
        print(f"  [1/3] create_ride_and_audit_record: ride #{self.ride_id} created, "
              'audit record "ride.created"')

    @acidic_job.step
    def create_stripe_charge(self, tx: Any) -> None:
        tx.execute("INSERT INTO audit_records (action, ride_id) VALUES ('charge.attempted', ?)",
                   (self.ride_id,))
        print('  [2/3] create_stripe_charge: audit record "charge.attempted", charging 20.00 EUR')
        charge_id = Stripe.charge(amount=20_00, ride_id=self.ride_id)
        tx.execute("UPDATE rides SET stripe_charge_id = ? WHERE id = ?", (charge_id, self.ride_id))

    @acidic_job.step
    def send_receipt(self, tx: Any) -> None:
        acidic_job.perform_transactionally(RideMailer, self.ride_id)
        print("  [3/3] send_receipt: RideMailer.confirm_charge staged, handed to the queue "
              "after this step commits")


def run_record() -> Optional[tuple]:
    try:
        return app.execute("SELECT recovery_point, locked_at, error_object FROM acidic_job_keys "
                           "WHERE idempotency_key = ?", (KEY,)).fetchone()
    except sqlite3.OperationalError:  # no such table: no run yet
        return None


def report() -> None:
    ride = app.execute("SELECT id, origin, target, stripe_charge_id FROM rides").fetchone()
    audits = [r[0] for r in app.execute("SELECT action FROM audit_records ORDER BY id")]
    point, locked, error = run_record() or (None, None, None)
    err = json.loads(error) if error else None
    error_text = f'"{err["message"]}" ({err["class"].split(".")[-1]})' if err else "none"
    staged = app.execute("SELECT count(*) FROM staged_acidic_jobs").fetchone()[0]
    print("  database now:")
    print(f"    rides:          #{ride[0]} {ride[1]} -> {ride[2]}, charge {ride[3] or 'none'}")
    print(f"    audit records:  {', '.join(audits)}")
    print(f"    run:            recovery point {point}, {'locked' if locked else 'unlocked'}, "
          f"error {error_text}")
    print(f"    staged jobs:    {staged}")


name = app.execute("SELECT name FROM users WHERE id = 42").fetchone()[0]
print(f"Booking a ride for {name} (user 42): Alexanderplatz -> BER Airport, 20.00 EUR")
before = run_record()
print(f'  run "{KEY}": resumes at {before[0]}' if before else f'  run "{KEY}": new')
try:
    RideCreate.run(42, {"origin": "Alexanderplatz", "target": "BER Airport"}, key=KEY)
    queue.acknowledge()
    print("  the run succeeded")
    as_told = not options.stripe_fails
except APIConnectionError:
    print(f"  failed at {run_record()[0]}: the step rolled back, the run recorded the error "
          "and was unlocked")
    as_told = options.stripe_fails
report()

if as_told and not options.stripe_fails:
    rides, charged = app.execute("SELECT count(*), count(stripe_charge_id) FROM rides").fetchone()
    as_told = rides == 1 and charged == 1
    if as_told:
        print("OK: one ride, charged once; the retry resumed at create_stripe_charge.")
if not as_told:
    sys.exit("UNEXPECTED: the run did not go as the story says")
