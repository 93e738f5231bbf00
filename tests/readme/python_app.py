"""The application around the README's Python quick start (tests/readme/run.sh): the rides
table, the Stripe client and the Celery task it names, on the quick start's own SQLite
file. Runs the quick start as written (it runs its workflow itself). Run twice in two
processes: the second must do nothing.

    python python_app.py QUICKSTART.py DATABASE CALLS_LOG

CALLS_LOG gets one line per call that leaves the process (Stripe, a task sent to the
broker), so that calls can be counted across both runs.
"""
import sqlite3
import sys
import types

from celery import Celery, signals

import acidic_job
import acidic_job.celery

quickstart, database, calls_log = sys.argv[1:]
calls = open(calls_log, "a", buffering=1)

app_db = sqlite3.connect(database)
app_db.execute("CREATE TABLE IF NOT EXISTS rides (id INTEGER PRIMARY KEY, user_id INTEGER, "
               "origin TEXT, target TEXT)")
app_db.commit()
app_db.close()


class Charge:
    @staticmethod
    def create(amount, idempotency_key):
        calls.write(f"stripe.Charge.create {amount} {idempotency_key}\n")


# The quick start imports stripe; this process's stand-in is that module.
stripe = types.ModuleType("stripe")
stripe.Charge = Charge
sys.modules["stripe"] = stripe


# A real Celery app on kombu's in-memory broker: staged tasks are sent to it after commit.
celery_app = Celery("readme", broker="memory://")
acidic_job.celery.install(celery_app, f"sqlite:{database}")


@celery_app.task(base=acidic_job.celery.Task)
def send_receipt_task(ride_id):
    pass


@signals.after_task_publish.connect
def published(sender=None, body=None, **_):
    calls.write(f"celery {sender} {list(body[0]) if body else ''}\n")


# ... and imports its Celery task from the application's shop.tasks.
shop = types.ModuleType("shop")
shop.tasks = types.ModuleType("shop.tasks")
shop.tasks.send_receipt_task = send_receipt_task
sys.modules.update({"shop": shop, "shop.tasks": shop.tasks})

with open(quickstart, encoding="utf-8") as f:
    code = compile(f.read(), quickstart, "exec")
exec(code, {"__name__": "__main__"})
