"""The Python worker of the kill-anywhere harness (driver.py starts and SIGKILLs it).

    worker.py --db URL --mode url|borrowed --keys N [--final] [--recover]
              [--kill-at POINT:PERCENT]... [--lock-ms MS] [--pace-ms MS]

The same work as c/kill_worker.c, through the package: workflows "k0".."k<N-1>" of three
steps, each inserting (key, step) into app_steps; s2 stages a "plain" job, or for every
fourth key awaits two children whose last acknowledgement stages the continuation. Staged
jobs go to an in-memory queue (the adapter "harness"), performed after each run. Runs are
started inside ``acidic_job.recoverable("harness")``, so each records the job that resumes
it and ``acidic_job.recover`` can hand it back.
--mode url gives the core the URL (an owned store); borrowed hands it a factory of sqlite3
or psycopg 3 connections (the documented way for workers).
--recover sweeps (acidic_job.recover) before each pass; --final finishes the work as
c/kill_worker.c does: recovery, drains, and only keys without a row are started.
Kill points: acquire and recovery (the package's log records of the core's events:
"started"/"resumed", "recovered"), step, push, child.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import sys
import time
from typing import Any, List, Tuple

import logging

import acidic_job
from acidic_job import adapters, queues

KILL = {"acquire": 0, "step": 0, "push": 0, "child": 0, "recovery": 0}
QUEUE: List[Tuple[int, str, dict]] = []


def maybe_die(point: str) -> None:
    if KILL[point] and random.randrange(100) < KILL[point]:
        print(f"SELFKILL {point}", flush=True)  # tell the driver where, then die
        os.kill(os.getpid(), signal.SIGKILL)


class KillAtEvents(logging.Handler):
    """The kill points inside the core: its events, as the package logs them."""

    POINTS = {"started": "acquire", "resumed": "acquire", "recovered": "recovery"}

    def emit(self, record: logging.LogRecord) -> None:
        point = self.POINTS.get(getattr(record, "event", ""))
        if point:
            maybe_die(point)


class HarnessAdapter(adapters.Adapter):
    name = "harness"

    def send(self, staged_id: int, job_name: str, payload: dict) -> None:
        maybe_die("push")
        QUEUE.append((staged_id, job_name, payload))

    def continuation(self) -> str:
        return "resume"


class Job:
    def __init__(self, name: str) -> None:
        self.__acidic_job_adapter__ = ("harness", name)


PLAIN, CHILD0, CHILD1 = Job("plain"), Job("child0"), Job("child1")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--mode", choices=["url", "borrowed"], default="url")
    ap.add_argument("--keys", type=int, default=100)
    ap.add_argument("--lock-ms", type=int, default=2000)
    ap.add_argument("--pace-ms", type=int, default=0)
    ap.add_argument("--final", action="store_true")
    ap.add_argument("--recover", action="store_true")
    ap.add_argument("--kill-at", action="append", default=[])
    a = ap.parse_args()
    for spec in a.kill_at:
        point, percent = spec.split(":")
        if point not in KILL:
            print(f"unknown kill point {point}", file=sys.stderr, flush=True)
            return 2
        KILL[point] = int(percent)
    if KILL["acquire"] or KILL["recovery"]:
        logger = logging.getLogger("acidic_job")
        logger.setLevel(logging.DEBUG)  # the package then asks the core for every event
        logger.propagate = False
        logger.addHandler(KillAtEvents())
    pg = not a.db.startswith("sqlite:")
    ph = "?"
    if a.mode == "url":
        db: Any = a.db
    elif pg:  # a factory: the binding calls it again when the connection is gone
        import psycopg
        db = lambda: psycopg.connect(a.db)  # noqa: E731
        ph = "%s"
    else:
        db = lambda: sqlite3.connect(a.db[len("sqlite:"):], timeout=5)  # noqa: E731
    adapters.install_adapter(HarnessAdapter())
    insert_step = f"INSERT INTO app_steps (key, step) VALUES ({ph}, {ph})"

    def write_step(tx: Any, name: str) -> None:
        tx.execute(insert_step, (acidic_job.current_step().run.key, name))
        maybe_die("step")

    # failed runs (lost connections) come back soon; a run killed many times is never dead
    options = dict(lock_timeout=a.lock_ms / 1000, retry_base=0.05, max_attempts=0)

    @acidic_job.workflow(db, name="KillFlow", **options)
    class KillFlow:
        @acidic_job.step
        def s1(self, tx: Any) -> None:
            write_step(tx, "s1")

        @acidic_job.step
        def s2(self, tx: Any) -> None:
            write_step(tx, "s2")
            acidic_job.perform_transactionally(PLAIN, acidic_job.current_step().run.key)

        @acidic_job.step
        def s3(self, tx: Any) -> None:
            write_step(tx, "s3")

    @acidic_job.workflow(db, name="KillFlowAwait", **options)
    class KillFlowAwait:
        @acidic_job.step
        def s1(self, tx: Any) -> None:
            write_step(tx, "s1")

        @acidic_job.step(awaits=[CHILD0, CHILD1])
        def s2(self, tx: Any) -> Any:
            write_step(tx, "s2")
            key = acidic_job.current_step().run.key
            return {CHILD0: (key,), CHILD1: (key,)}

        @acidic_job.step
        def s3(self, tx: Any) -> None:
            write_step(tx, "s3")

    database = KillFlow.__acidic_workflow__.database

    def deliver(key: str, job: str) -> None:
        """The job's own write, outside any step (committed at once)."""
        if a.mode == "url":
            database.current().store().exec("INSERT INTO deliveries (key, job) VALUES (?, ?)",
                                            (key, job))
        else:
            conn = database.current().conn
            conn.cursor().execute(f"INSERT INTO deliveries (key, job) VALUES ({ph}, {ph})",
                                  (key, job))
            conn.commit()

    def run_key(i: int) -> None:
        flow = KillFlowAwait if i % 4 == 0 else KillFlow
        try:
            with acidic_job.recoverable("harness"):
                flow.run(key=f"k{i}")
        except (acidic_job.LockedIdempotencyKey, acidic_job.SerializationConflict):
            pass
        except Exception as exc:  # reported; the driver judges the end state
            print(f"run k{i}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def perform_queue() -> None:
        while QUEUE:
            staged_id, name, payload = QUEUE.pop()
            try:
                if name == "resume":
                    with acidic_job.recoverable("harness"):
                        queues.resume(payload["args"][0])
                else:
                    deliver(payload["args"][0], name)
                    if name.startswith("child"):
                        maybe_die("child")
                acidic_job.ack(staged_id, database)
            except (acidic_job.LockedIdempotencyKey, acidic_job.SerializationConflict):
                pass
            except Exception as exc:  # noqa: B902 - reported, the driver judges
                print(f"job {name} {staged_id}: {type(exc).__name__}: {exc}", file=sys.stderr,
                      flush=True)

    def query(sql: str) -> List[tuple]:
        if a.mode == "url":
            return list(database.current().store().exec(sql))
        conn = database.current().conn
        cur = conn.cursor()
        cur.execute(sql)
        rows = cur.fetchall()
        conn.commit()
        return rows

    def done() -> bool:
        """Every run finished and every staged job acknowledged."""
        try:
            finished = query("SELECT count(*) FROM acidic_job_keys "
                             "WHERE recovery_point = 'FINISHED'")[0][0]
            staged = query("SELECT count(*) FROM staged_acidic_jobs")[0][0]
            return int(finished) >= a.keys and int(staged) == 0
        except Exception as exc:  # the database may be restarting
            print(f"count: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return False

    def with_rows() -> set:
        try:
            return {k for (k,) in query("SELECT idempotency_key FROM acidic_job_keys")}
        except Exception as exc:  # the database may be restarting: nothing is started
            print(f"keys: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return {f"k{i}" for i in range(a.keys)}

    def recover() -> None:
        try:
            got = acidic_job.recover(database)
            if got.requeued or got.dead:
                print(f"RECOVERED {got.requeued} {got.dead}", flush=True)
        except Exception as exc:  # noqa: B902 - reported, the driver judges
            print(f"recover: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    def drain() -> None:
        try:
            acidic_job.drain(database, older_than=0)
        except Exception as exc:  # noqa: B902 - reported, the driver judges
            print(f"drain: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)

    print("READY", flush=True)
    deadline = time.time() + 300
    finished = False
    while True:
        if a.recover or a.final:
            recover()
        if a.final:
            drain()
        perform_queue()
        order = list(range(a.keys))
        random.shuffle(order)
        started = with_rows() if a.final else set()
        for i in order:
            if f"k{i}" in started:
                continue  # recovery's, not the rerun's
            run_key(i)
            perform_queue()
            time.sleep(a.pace_ms / 1000)
        if not a.final:
            continue
        finished = done()
        if finished or time.time() > deadline:
            break
        time.sleep(0.1)
    print("DONE" if finished else "GAVE UP", flush=True)
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
