"""A workflow whose step can be killed half-way (used by test_connections.py and
test_recover.py).

``python killable.py KIND URL [LOCK_TIMEOUT]`` runs it with a connection of KIND on URL,
recoverable through the test's recording adapter: the step inserts a row, prints IN_STEP
and blocks until killed.
"""
from __future__ import annotations

import sys
from typing import Any, Optional

import acidic_job


def connect(kind: str, url: str) -> Any:
    if kind == "sqlite3":
        import sqlite3
        return sqlite3.connect(url[len("sqlite:"):])
    if kind == "psycopg":
        import psycopg
        return psycopg.connect(url)
    if kind == "psycopg2":
        import psycopg2
        return psycopg2.connect(url)
    return url


def make(db: Any, ph: str, block: bool, lock_timeout: Optional[float] = None) -> Any:
    @acidic_job.workflow(db, name="Killable", lock_timeout=lock_timeout)
    class Killable:
        def __init__(self, order_id: int) -> None:
            self.order_id = order_id

        @acidic_job.step
        def reserve(self, tx: Any) -> None:
            tx.execute(f"INSERT INTO step_rows (order_id, step) VALUES ({ph}, {ph})",
                       (self.order_id, "reserve"))

        @acidic_job.step
        def ship(self, tx: Any) -> None:
            tx.execute(f"INSERT INTO step_rows (order_id, step) VALUES ({ph}, {ph})",
                       (self.order_id, "ship"))
            if block:
                print("IN_STEP", flush=True)
                sys.stdin.read()  # until the parent kills us

    return Killable


if __name__ == "__main__":
    import recording
    kind, url = sys.argv[1], sys.argv[2]
    lock_timeout = float(sys.argv[3]) if len(sys.argv) > 3 else None
    ph = "?" if kind in ("sqlite3", "sqlite-url", "pg-url") else "%s"
    acidic_job.adapters.install_adapter(recording.RecordingAdapter())
    with acidic_job.recoverable(recording.RecordingAdapter.name):
        make(connect(kind, url), ph, block=True, lock_timeout=lock_timeout).run(7)
