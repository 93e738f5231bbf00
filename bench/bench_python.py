"""make bench, Python part (issue 10), through the installed package as an application uses it.

    python bench_python.py workflow DB ROUNDS RUNS BENCH_CORE   ratio, commits, job latency
    python bench_python.py memory DB RUNS WARM SIDE             RSS growth (SIDE: acidic|plain)
    python bench_python.py profile DB RUNS                      cProfile of both jobs

DB is sqlite:PATH (the stdlib sqlite3 module; WAL, synchronous=FULL) or a PostgreSQL URI
(psycopg 3). BENCH_CORE is the C bench, used to count SQLite WAL commit frames.

The workflow is decorated with @acidic_job.workflow on the borrowed connection; each of its
3 steps inserts one row through the step's cursor and sets one persisted attribute; the
last stages one job with perform_transactionally (an adapter installed in this process
that appends to a list, as a queue client would). The plain job makes the same 3 inserts
in 3 transactions of the same connection (``with conn:`` on sqlite3, ``conn.transaction()``
on psycopg) and then calls the same adapter's send. Beside them run the same workflow
written by hand and the core's calls alone (the least a binding can run). Rounds
alternate; each result is a line "ROW {json}".
"""
from __future__ import annotations

import gc
import json
import re
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Optional

import acidic_job
from acidic_job import _native
from acidic_job.adapters import Adapter, install_adapter

DB = ""
SQLITE_PATH: Optional[str] = None


class ListQueue(Adapter):
    """The queue: a staged job reaches it after commit; the plain job calls send directly."""

    name = "bench"

    def __init__(self) -> None:
        super().__init__()
        self.sent: List[Any] = []

    def send(self, staged_id: int, job_name: str, payload: Dict[str, Any]) -> None:
        self.sent.append((staged_id, job_name, payload))
        if len(self.sent) > 1000:
            self.sent.clear()


class NotifyJob:
    """A job of the bench queue (what @acidic_job.rq.job or a Celery task would be)."""

    __acidic_job_adapter__ = ("bench", "NotifyJob")


def connect(url: str, synchronous: str):
    global DB, SQLITE_PATH
    if url.startswith("sqlite:"):
        import sqlite3
        SQLITE_PATH = url[len("sqlite:"):]
        conn = sqlite3.connect(SQLITE_PATH)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        with conn:
            conn.execute("CREATE TABLE IF NOT EXISTS bench_rides"
                         " (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            conn.execute("CREATE TABLE IF NOT EXISTS bench_progress (id INTEGER PRIMARY KEY"
                         " AUTOINCREMENT, key TEXT NOT NULL UNIQUE, step TEXT NOT NULL,"
                         " attrs TEXT, locked_at TEXT)")
            conn.execute("CREATE TABLE IF NOT EXISTS bench_outbox (id INTEGER PRIMARY KEY"
                         " AUTOINCREMENT, payload TEXT NOT NULL)")
        DB = "sqlite"
        return conn
    import psycopg
    conn = psycopg.connect(url)
    with conn.transaction():
        conn.execute("CREATE TABLE IF NOT EXISTS bench_rides"
                     " (id bigserial PRIMARY KEY, name text NOT NULL)")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_progress (id bigserial PRIMARY KEY,"
                     " key text NOT NULL UNIQUE, step text NOT NULL, attrs text,"
                     " locked_at text)")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_outbox (id bigserial PRIMARY KEY,"
                     " payload text NOT NULL)")
    DB = "postgres"
    return conn


def jobs(conn, queue: ListQueue):
    insert = ("INSERT INTO bench_rides (name) VALUES (?)" if DB == "sqlite"
              else "INSERT INTO bench_rides (name) VALUES (%s) RETURNING id")

    def insert_row(cur) -> int:
        cur.execute(insert, ("ride",))
        return cur.lastrowid if DB == "sqlite" else cur.fetchone()[0]

    @acidic_job.workflow(conn, name="BenchWorkflow")
    class BenchWorkflow:
        ride_a: Optional[int] = None
        ride_b: Optional[int] = None
        ride_c: Optional[int] = None

        @acidic_job.step
        def create_a(self, tx) -> None:
            self.ride_a = insert_row(tx)

        @acidic_job.step
        def create_b(self, tx) -> None:
            self.ride_b = insert_row(tx)

        @acidic_job.step
        def create_c(self, tx) -> None:
            self.ride_c = insert_row(tx)
            acidic_job.perform_transactionally(NotifyJob, self.ride_c)

    keys = iter(range(10**12))
    prefix = f"bench-{time.time_ns()}"

    def workflow() -> bool:
        return BenchWorkflow.run(key=f"{prefix}-{next(keys)}")

    transaction = (lambda: conn) if DB == "sqlite" else conn.transaction

    def plain() -> bool:
        cur = conn.cursor()
        for _ in range(3):
            with transaction():
                ride = insert_row(cur)
        queue.send(0, "NotifyJob", {"args": [ride], "kwargs": {}})
        return True

    mark = "?" if DB == "sqlite" else "%s"
    start = (f"INSERT INTO bench_progress (key, step, attrs, locked_at)"
             f" VALUES ({mark}, 'b', {mark}, {mark})")
    advance = (f"UPDATE bench_progress SET step = {mark}, attrs = {mark}, locked_at = {mark}"
               f" WHERE key = {mark} AND step = {mark}")
    outbox = f"INSERT INTO bench_outbox (payload) VALUES ({mark})"

    def by_hand() -> bool:
        """The workflow written by hand, as bench_core.c's: each step's transaction also
        compares-and-sets a progress row (the step to resume at and the attributes as
        JSON); the last writes the job to an outbox row, sent after commit."""
        key = f"{prefix}-hand-{next(keys)}"
        cur = conn.cursor()
        attrs: Dict[str, int] = {}
        for i, (name, step, expect) in enumerate((("ride_a", "b", None), ("ride_b", "c", "b"),
                                                   ("ride_c", "FINISHED", "c"))):
            with transaction():
                attrs[name] = insert_row(cur)
                if expect is None:
                    cur.execute(start, (key, json.dumps(attrs), repr(time.time())))
                else:
                    cur.execute(advance, (step, json.dumps(attrs),
                                          repr(time.time()) if i < 2 else None, key, expect))
                    if cur.rowcount != 1:
                        raise SystemExit("bench: the hand-written progress row moved")
                if i == 2:
                    payload = {"args": [attrs[name]], "kwargs": {}}
                    cur.execute(outbox, (json.dumps(payload),))
        queue.send(0, "NotifyJob", payload)
        return True

    spec = BenchWorkflow.__acidic_workflow__  # type: ignore[attr-defined]
    native_workflow = _native.Workflow(["create_a", "create_b", "create_c"])
    args_doc, _ = spec.encode_arguments((), {})
    attrs_doc = spec.encode_attributes(BenchWorkflow())

    def core_alone() -> bool:
        """The workflow's core calls on acidic_job._native directly, with none of the
        decorator's layer around them (no step context, events or attribute codec): the
        same statements, transactions, attributes document, staged job and push. What it
        reads against the plain job is the most a Python layer over this core can read."""
        store = spec.database.current().store()
        run = _native.Run(store, native_workflow, f"{prefix}-core-{next(keys)}",
                          "BenchCoreOnly", args_doc, attrs_doc)
        cur = conn.cursor()
        rides: Dict[str, int] = {}

        def step(name: str) -> None:
            rides[name] = insert_row(cur)
            run.set_attributes(json.dumps(rides))
            if name == "create_c":
                run.stage("bench", "NotifyJob",
                          json.dumps({"args": [rides[name]], "kwargs": {}}))
        try:
            return run.execute(step) == _native.RUN_SUCCEEDED
        finally:
            run.close()
    return workflow, plain, by_hand, core_alone


def emit(measure: str, figure, baseline, unit: str, ratio=None, goal=None, limit=None,
         note: Optional[str] = None) -> None:
    row = {"measure": measure, "from": "Python", "db": DB, "figure": figure,
           "baseline": baseline, "unit": unit, "ratio": ratio, "goal": goal, "limit": limit}
    if note:
        row["note"] = note
    print("ROW " + json.dumps(row), flush=True)


def emit_rates(measure: str, rates: List[float], baselines: List[float], what: str) -> None:
    """Rates of one side against another's, round by round: the medians, the median ratio
    and the rounds' spread after `what`."""
    ratios = [a / b for a, b in zip(rates, baselines)]
    emit(measure, statistics.median(rates), statistics.median(baselines), "workflows/s",
         statistics.median(ratios), note=f"{what}; {min(ratios):.2f} to {max(ratios):.2f}")


def perform(job: Callable[[], bool], n: int) -> List[float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        if not job():
            raise SystemExit("bench: a run did not succeed")
        times.append(time.perf_counter() - t0)
    return times


def quantile(values: List[float], q: float) -> float:
    s = sorted(values)
    return s[min(round(q * (len(s) - 1)), len(s) - 1)]


def commits_now(conn, bench_core: str) -> int:
    """See bench_core.c: WAL commit frames on SQLite; on PostgreSQL the database's
    xact_commit after flushing this backend's statistics (2 commits of its own)."""
    if SQLITE_PATH:
        out = subprocess.run([bench_core, "walcommits", SQLITE_PATH + "-wal"], check=True,
                             capture_output=True, text=True).stdout
        return int(out)
    conn.execute("SELECT pg_stat_force_next_flush()")
    conn.commit()
    n = conn.execute("SELECT xact_commit FROM pg_stat_database"
                     " WHERE datname = current_database()").fetchone()[0]
    conn.commit()
    return int(n)


def measure_workflow(url: str, rounds: int, runs: int, bench_core: str) -> None:
    conn = connect(url, "FULL")
    queue = install_adapter(ListQueue())
    workflow, plain, by_hand, core_alone = jobs(conn, queue)
    sides = [("plain", plain), ("acidic", workflow), ("hand", by_hand), ("core", core_alone)]
    for _, job in sides:
        perform(job, runs // 4 + 5)
    rates: Dict[str, List[float]] = {name: [] for name, _ in sides}
    lat: Dict[str, List[float]] = {name: [] for name, _ in sides}
    for r in range(rounds):
        # rotate which side goes first, so drift hits all alike
        k = r % len(sides)
        for name, job in sides[k:] + sides[:k]:
            times = perform(job, runs)
            rates[name].append(runs / sum(times))
            lat[name].extend(times)
    ratios = [a / b for a, b in zip(rates["acidic"], rates["plain"])]
    emit("workflow ratio", statistics.median(rates["acidic"]), statistics.median(rates["plain"]),
         "workflows/s", statistics.median(ratios), goal=0.8,
         note=f"ratio {min(ratios):.2f} to {max(ratios):.2f} over {rounds} rounds of {runs}")
    emit_rates("workflow vs the same by hand", rates["acidic"], rates["hand"],
               "baseline: each step also sets a progress row, the last writes an outbox row"
               " (sqlite3/psycopg, JSON)")
    emit_rates("the same by hand vs plain", rates["hand"], rates["plain"],
               "the application's own hand-written workflow (its progress and outbox rows"
               " through the driver) vs the plain job")
    emit_rates("the core alone vs plain", rates["core"], rates["plain"],
               "the workflow's core calls on acidic_job._native directly, with no decorator"
               " layer around them: the most a Python layer over this core can read")
    emit_rates("workflow vs the core alone", rates["acidic"], rates["core"],
               "what the decorator layer costs")
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        a, b = 1e3 * quantile(lat["acidic"], q), 1e3 * quantile(lat["plain"], q)
        emit(f"job latency {name}", a, b, "ms", b / a, note="a whole 3-step job vs the plain job")

    if SQLITE_PATH:
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counted = {}
    for name, job in sides[:2]:
        before = commits_now(conn, bench_core)
        perform(job, 100)
        counted[name] = (commits_now(conn, bench_core) - before - (0 if SQLITE_PATH else 2)) / 100
    if SQLITE_PATH:
        conn.execute("PRAGMA wal_autocheckpoint=1000")
    emit("commits per workflow", counted["acidic"], counted["plain"], "commits",
         counted["plain"] / counted["acidic"], goal=1.0,
         note="over 100 runs; goal: commits = steps (3)")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1)) / 1024


def measure_memory(url: str, runs: int, warm: int, side: str) -> None:
    """fsync does not change a process's memory: SQLite runs with synchronous=OFF here.
    Each side runs in a process of its own (they run concurrently, in the background)."""
    conn = connect(url, "OFF")
    queue = install_adapter(ListQueue())
    workflow, plain, *_ = jobs(conn, queue)
    job = workflow if side == "acidic" else plain
    perform(job, warm)
    gc.collect()
    before = rss_mb()
    for _ in range(runs - warm):
        job()
    gc.collect()
    growth = rss_mb() - before
    print("MEMORY " + json.dumps({"from": "Python", "db": DB, "side": side, "growth_mb": growth,
                                  "rss_mb": rss_mb(), "runs": runs - warm, "warm": warm}),
          flush=True)


def profile(url: str, runs: int) -> None:
    """Where the time of a workflow goes, next to the plain job's (cProfile, wall clock)."""
    import cProfile
    import pstats
    conn = connect(url, "FULL")
    queue = install_adapter(ListQueue())
    workflow, plain, *_ = jobs(conn, queue)
    perform(workflow, runs // 10)
    perform(plain, runs // 10)
    for name, job in (("workflow", workflow), ("plain job", plain)):
        prof = cProfile.Profile()
        prof.enable()
        perform(job, runs)
        prof.disable()
        print(f"=== {name}: {runs} runs on {DB} (cProfile, sorted by own time) ===")
        stats = pstats.Stats(prof, stream=sys.stdout)
        stats.sort_stats("tottime").print_stats(30)
        print(f"--- {name}: acidic_job's own functions, by cumulative time ---")
        stats.sort_stats("cumulative").print_stats("acidic_job", 25)


def main() -> None:
    mode = sys.argv[1]
    if mode == "workflow":
        measure_workflow(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif mode == "memory":
        measure_memory(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    elif mode == "profile":
        profile(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
