"""make bench, Python part: acidic_job steps against plain transactions, same database.

    python bench_python.py URL [STEPS]

URL is sqlite:PATH or a PostgreSQL URI. The application's connection is the stdlib sqlite3
module or psycopg (3), the way a Python application would write: the baseline is
``with transaction: INSERT``; the acidic side is a workflow of 10 steps, each making that same
INSERT through the step's cursor on the same (borrowed) connection. A step's cost is the
marginal one: (time of a 10-step run - time of a 1-step run) / 9, which leaves out the
run's acquisition (one transaction per run, reported as well). Rounds alternate, and the
median ratios are printed as "RATIO python <db> <ratio>" (steps) and
"RATIO python-runs <db> <ratio>" (whole 10-step runs, acquisition included).
"""
from __future__ import annotations

import itertools
import os
import statistics
import sys
import time

import acidic_job

STEPS_PER_RUN = 10
ROUNDS = 11


def connect(url: str):
    if url.startswith("sqlite:"):
        import sqlite3
        conn = sqlite3.connect(url[len("sqlite:"):], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_rides (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        return "sqlite", conn
    import psycopg
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE TABLE IF NOT EXISTS bench_rides (id bigserial PRIMARY KEY, name text NOT NULL)")
    conn.autocommit = False
    return "postgres", conn


def main() -> None:
    url = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    db, conn = connect(url)
    insert = ("INSERT INTO bench_rides (name) VALUES (?)" if db == "sqlite"
              else "INSERT INTO bench_rides (name) VALUES (%s)")
    counter = itertools.count()

    def plain(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            if db == "sqlite":
                conn.execute("BEGIN")
                conn.execute(insert, (f"ride {next(counter)}",))
                conn.execute("COMMIT")
            else:
                with conn.transaction():
                    conn.execute(insert, (f"ride {next(counter)}",))
        return n / (time.perf_counter() - t0)

    def make_step(name: str):
        def write(self, tx) -> None:
            tx.execute(insert, (f"ride {next(counter)}",))
        write.__name__ = write.__qualname__ = name
        return acidic_job.step(write)

    def workflow_of(n: int, name: str):
        namespace = {f"step_{i}": make_step(f"step_{i}") for i in range(n)}
        return acidic_job.workflow(conn, name=name)(type(name, (), namespace))

    long_job, short_job = workflow_of(STEPS_PER_RUN, "BenchJob"), workflow_of(1, "BenchJob1")

    def seconds_per_run(job, runs: int, tag: str) -> float:
        t0 = time.perf_counter()
        for r in range(runs):
            if not job.run(key=f"{tag}-{os.getpid()}-{r}-{time.time_ns()}"):
                raise SystemExit("bench: a run did not succeed")
        return (time.perf_counter() - t0) / runs

    plain(steps // 10)
    seconds_per_run(long_job, max(1, steps // 100), "warm")
    runs = max(2, steps // ROUNDS // STEPS_PER_RUN)
    base, step_rate, run_rate = [], [], []
    for r in range(ROUNDS):
        base.append(plain(runs * STEPS_PER_RUN))
        t_long = seconds_per_run(long_job, runs, f"l{r}")
        t_short = seconds_per_run(short_job, runs, f"s{r}")
        step_rate.append((STEPS_PER_RUN - 1) / (t_long - t_short))
        run_rate.append(STEPS_PER_RUN / t_long)
    print(f"{db:<8} Python  plain transactions  {statistics.median(base):9.0f} /s")
    print(f"{db:<8} Python  acidic_job steps    {statistics.median(step_rate):9.0f} /s")
    print(f"{db:<8} Python  in 10-step runs     {statistics.median(run_rate):9.0f} steps/s (acquisition included)")
    print(f"RATIO python {db} {statistics.median([s / b for s, b in zip(step_rate, base)]):.3f}")
    print(f"RATIO python-runs {db} {statistics.median([s / b for s, b in zip(run_rate, base)]):.3f}")


if __name__ == "__main__":
    main()
