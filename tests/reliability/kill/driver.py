"""Kill anywhere (issue 9, section 6): workers SIGKILLed at random, then recovered and drained.

    driver.py [--soak 0|1] [--only LANG-MODE,...] [--db sqlite,postgres] [--parallel N]

For each worker kind (C on a URL store and on a borrowed connection, Python on a URL store
and on a factory of borrowed sqlite3 / psycopg connections, Ruby ActiveJob on ActiveRecord)
and each database (a fresh SQLite file, a fresh PostgreSQL schema of AJ_TEST_PG_URL), two (C)
or three workers work through the same workflows, sweeping for stranded runs (recovery) before each
pass, while this driver SIGKILLs one of them at a random moment and starts another, until
the kind's share of kills is reached; half of the workers also kill themselves at chosen
points: during acquisition, inside a step, between commit and push, inside an awaited
child, during recovery. Then one worker finishes the work the way production does: it
recovers (runs that have a row are never started again by hand), drains, and performs what
comes back, starting only the keys that have no row, until every run has finished; and the
tables are checked:
  - each step row exactly once (duplicates: more than one; lost: none);
  - every run finished;
  - every staged job delivered at least once and acknowledged (staged_acidic_jobs empty);
  - every awaiting parent resumed exactly once (its s3 row once, no batch left);
  - nothing left locked.
The (kind, database) pairs run --parallel at a time (default 3; soak 6), each on a
database of its own, the longest first.
Prints per kind and database "FIGURES ...", per database "FIGURES kill <db> total: ..." and
"ROW | kill anywhere, <db> | ... |" (a row of the README's table), and
"SUMMARY reliability kill-<db> <passed> <failed>".
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from typing import Any, Dict, List, Optional
from urllib.parse import quote

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
PG_URL = os.environ.get("AJ_TEST_PG_URL", "")
LOCK_MS = 400  # short, so that recovery hands the runs of killed workers back soon

# kind (language-mode) -> share of the kills per database (short form: 200 in all per
# database, soak: 5,000); the shares follow each language's start-up time (a C worker
# starts in milliseconds, a Ruby one loads Rails in about a second, several on the loaded
# 2-core machine)
KINDS = {"c-url": 60, "c-borrowed": 50, "python-url": 30, "python-borrowed": 30,
         "ruby-activerecord": 30}
# the fault suite also runs Ruby on its own connection (database_url)
FAULT_KINDS = list(KINDS) + ["ruby-owned"]
SOAK_KINDS = {"c-url": 2320, "c-borrowed": 2000, "python-url": 300, "python-borrowed": 300,
              "ruby-activerecord": 80}
# workers at a time, and the seconds between two kills (uniform in the range, after the
# victim is READY; doubled for a worker that kills itself at chosen points, to give it the
# time to reach them): each worker lives about WORKERS times that
WORKERS = {"c": 2, "python": 3, "ruby": 3}
INTERVAL = {"c": (0.01, 0.2), "python": (0.05, 0.5), "ruby": (0.1, 0.7)}
# seconds per kill, about, on the loaded machine (the order of the pairs: the longest first)
PACE = {"c": 0.2, "python": 0.8, "ruby": 2.5}
# where a worker that kills itself does it (percent), the same in every language
SELF_KILL = {"acquire": 10, "step": 15, "push": 20, "child": 40, "recovery": 30}


def worker_command(kind: str, url: str, keys: int) -> List[str]:
    lang, mode = kind.split("-", 1)
    if lang == "c":
        cmd = [os.path.join(ROOT, "build", "reliability", "kill_worker"), "--mode", mode]
    elif lang == "python":
        cmd = [sys.executable, os.path.join(HERE, "worker.py"), "--mode", mode]
    else:
        cmd = ["ruby", os.path.join(HERE, "worker.rb"), "--mode", mode]
    return cmd + ["--db", url, "--keys", str(keys), "--lock-ms", str(LOCK_MS)]


def recovered(lines: List[str]) -> int:
    """Runs a worker's recovery sweeps handed back ("RECOVERED N D" lines)."""
    return sum(int(line.split()[1]) for line in lines if line.startswith("RECOVERED "))


class Worker:
    """A worker process; its stdout is read by a thread (READY, OPENFAIL, SELFKILL, RECOVERED)."""

    def __init__(self, cmd: List[str], log: Any) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True,
                                     env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})
        self.ready = threading.Event()
        self.kills_itself = False
        self.lines: List[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith("READY"):
                self.ready.set()
        self.ready.set()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


class Database:
    """A fresh SQLite file or PostgreSQL schema with the application's two tables."""

    def __init__(self, kind: str, tmp: str) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.path = os.path.join(tmp, f"kill-{uuid.uuid4().hex[:8]}.db")
            self.url = f"sqlite:{self.path}"
        else:
            import psycopg
            self.schema = "kill_" + uuid.uuid4().hex[:10]
            with psycopg.connect(PG_URL, autocommit=True) as admin:
                admin.execute(f"CREATE SCHEMA {self.schema}")
            sep = "&" if "?" in PG_URL else "?"
            self.url = f"{PG_URL}{sep}options={quote('-csearch_path=' + self.schema)}"
        self.sql("CREATE TABLE app_steps (id INTEGER PRIMARY KEY %s, key TEXT NOT NULL, "
                 "step TEXT NOT NULL)" % ("AUTOINCREMENT" if kind == "sqlite" else
                                          "GENERATED ALWAYS AS IDENTITY"))
        self.sql("CREATE TABLE deliveries (id INTEGER PRIMARY KEY %s, key TEXT NOT NULL, "
                 "job TEXT NOT NULL)" % ("AUTOINCREMENT" if kind == "sqlite" else
                                         "GENERATED ALWAYS AS IDENTITY"))

    def sql(self, text: str) -> List[tuple]:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path, timeout=30, isolation_level=None) as c:
                return c.execute(text).fetchall()
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as c:
            cur = c.execute(text)
            return cur.fetchall() if cur.description else []

    def drop(self) -> None:
        if self.kind == "postgres":
            import psycopg
            with psycopg.connect(PG_URL, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {self.schema} CASCADE")


def check(db: Database, keys: int) -> Dict[str, int]:
    """The invariants, as counts of what broke them."""
    steps = {(k, s): n for k, s, n in db.sql(
        "SELECT key, step, count(*) FROM app_steps GROUP BY key, step")}
    duplicates = sum(n - 1 for n in steps.values() if n > 1)
    lost = sum(1 for i in range(keys) for s in ("s1", "s2", "s3") if (f"k{i}", s) not in steps)
    rows = db.sql("SELECT idempotency_key, recovery_point, locked_at FROM acidic_job_keys")
    finished = {k for k, rp, _ in rows if rp == "FINISHED"}
    unfinished = keys - len(finished & {f"k{i}" for i in range(keys)})
    locked = sum(1 for _, _, locked_at in rows if locked_at is not None)
    staged_left = db.sql("SELECT count(*) FROM staged_acidic_jobs")[0][0]
    batches_left = db.sql("SELECT count(*) FROM acidic_job_batches")[0][0]
    delivered = {(k, j) for k, j in db.sql("SELECT DISTINCT key, job FROM deliveries")}
    undelivered = 0
    for i in range(keys):
        wanted = ("child0", "child1") if i % 4 == 0 else ("plain",)
        undelivered += sum(1 for j in wanted if (f"k{i}", j) not in delivered)
    return {"duplicates": duplicates, "lost": lost, "unfinished": unfinished, "locked": locked,
            "staged_left": staged_left, "batches_left": batches_left,
            "undelivered": undelivered}


def chaos(kind: str, db: Database, keys: int, kills: int, log: Any) -> Dict[str, int]:
    """WORKERS workers at a time, SIGKILLed at random until `kills` kills; then the final
    worker recovers, drains and reruns what never started."""
    rng = random.Random(f"{kind}-{db.kind}-{kills}")
    base = worker_command(kind, db.url, keys)
    self_kill = [arg for point, percent in SELF_KILL.items()
                 for arg in ("--kill-at", f"{point}:{percent}")]

    def spawn() -> Worker:
        w = Worker(base + ["--recover"] + (self_kill if rng.random() < 0.5 else []), log)
        w.kills_itself = len(w.proc.args) > len(base) + 1
        return w

    figures = {"kills": 0, "self_kills": 0, "open_failures": 0, "crashes": 0, "recovered": 0,
               **{"self_" + point: 0 for point in SELF_KILL}}

    def count_self_kill(w: Worker) -> None:
        for line in w.lines:
            if line.startswith("SELFKILL "):
                figures["self_" + line.split()[1]] += 1
    lang = kind.split("-")[0]
    workers = [spawn() for _ in range(WORKERS[lang])]
    interval = INTERVAL[lang]
    # a bound on the chaos, generous for the slowest starts (Ruby loads Rails in ~1 s)
    deadline = time.time() + 120 + kills * {"c": 1.5, "python": 3, "ruby": 8}[kind.split("-")[0]]
    while figures["kills"] < kills and time.time() < deadline:
        victim = rng.randrange(len(workers))
        w = workers[victim]
        w.ready.wait(30)
        # a worker that kills itself at chosen points gets the time to reach them
        time.sleep(rng.uniform(*interval) * (2 if w.kills_itself else 1))
        rc = w.proc.poll()
        if rc is None:
            w.kill()
            figures["kills"] += 1
        elif rc == -signal.SIGKILL:
            figures["kills"] += 1
            figures["self_kills"] += 1
            count_self_kill(w)
        else:
            figures["crashes"] += 1
            print(f"!! {kind} worker exited with {rc}: {w.lines[-3:]}", flush=True)
        figures["open_failures"] += sum(1 for line in w.lines if line.startswith("OPENFAIL"))
        figures["recovered"] += recovered(w.lines)
        workers[victim] = spawn()
    for w in workers:
        w.kill()
        figures["open_failures"] += sum(1 for line in w.lines if line.startswith("OPENFAIL"))
        figures["recovered"] += recovered(w.lines)
    # What the chaos left: the steps committed, and the runs it left in flight (started,
    # not finished): the end must finish those by recovery.
    figures["chaos_steps"] = db.sql("SELECT count(*) FROM app_steps")[0][0]
    figures["in_flight"] = db.sql("SELECT count(*) FROM acidic_job_keys "
                                  "WHERE recovery_point <> 'FINISHED'")[0][0]
    # The end: recovery hands back what the dead workers left, the drain what they had
    # not pushed; keys that never started are run.
    final = Worker(base + ["--final"], log)
    try:
        final.proc.wait(360)
    except subprocess.TimeoutExpired:
        final.kill()
    figures["rerun_ok"] = int(final.proc.returncode == 0 and "DONE" in final.lines)
    figures["open_failures"] += sum(1 for line in final.lines if line.startswith("OPENFAIL"))
    figures["recovered_final"] = recovered(final.lines)
    return figures


def one_pair(dbkind: str, kind: str, kills: int, keys: int, tmp: str,
             out: threading.Lock) -> Dict[str, Any]:
    """The chaos, the end and the check of one kind on a database of its own."""
    db = Database(dbkind, tmp)
    log_path = os.path.join(tmp, f"{kind}-{dbkind}.log")
    with open(log_path, "w") as log:
        started = time.time()
        fig = chaos(kind, db, keys, kills, log)
        broken = check(db, keys)
    stranded = broken["unfinished"] + broken["locked"] + broken["staged_left"] + \
        broken["batches_left"]
    ok = fig["kills"] >= kills and fig["rerun_ok"] and not fig["crashes"] and \
        not any(broken.values()) and not fig["open_failures"]
    text = (f"FIGURES kill {kind} {dbkind}: kills {fig['kills']} (self {fig['self_kills']}: "
            f"at acquisition {fig['self_acquire']}, in a step {fig['self_step']}, "
            f"between commit and push {fig['self_push']}, in an awaited child "
            f"{fig['self_child']}, during recovery {fig['self_recovery']}), "
            f"steps committed during the chaos {fig['chaos_steps']}, runs left in flight "
            f"{fig['in_flight']}, recovered {fig['recovered']} + {fig['recovered_final']} "
            f"at the end, "
            f"runs {keys}, steps {3 * keys}, duplicates {broken['duplicates']}, "
            f"lost {broken['lost']}, stranded {stranded} (unfinished "
            f"{broken['unfinished']}, locked {broken['locked']}, staged left "
            f"{broken['staged_left']}, batches left {broken['batches_left']}), "
            f"undelivered {broken['undelivered']}, open failures {fig['open_failures']}, "
            f"crashes {fig['crashes']}, rerun {'ok' if fig['rerun_ok'] else 'FAILED'}, "
            f"{time.time() - started:.0f} s")
    if not ok:
        with open(log_path) as f:
            tail = f.read()[-3000:]
        why = [w for w, bad in (
            (f"only {fig['kills']} of {kills} kills in the time allowed", fig["kills"] < kills),
            ("recovery and the rerun did not finish every run", not fig["rerun_ok"]),
            (f"{fig['crashes']} workers exited on their own", fig["crashes"]),
            (f"{fig['open_failures']} stores failed to open", fig["open_failures"]),
            ("an invariant broke (figures above)", any(broken.values()))) if bad]
        text += f"\n!! {kind} on {dbkind}: {'; '.join(why)}; worker stderr (tail):\n{tail}"
    else:
        db.drop()
    with out:
        print(text, flush=True)
    return {"ok": ok, "kills": fig["kills"], "self_kills": fig["self_kills"], "runs": keys,
            "steps": 3 * keys, "recovered": fig["recovered"] + fig["recovered_final"],
            "duplicates": broken["duplicates"], "lost": broken["lost"], "stranded": stranded}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--soak", default="0")
    ap.add_argument("--only", default="")
    ap.add_argument("--db", default="sqlite,postgres")
    ap.add_argument("--keys", type=int, default=0)
    ap.add_argument("--parallel", type=int, default=0)
    a = ap.parse_args()
    soak = a.soak == "1"
    kinds = SOAK_KINDS if soak else KINDS
    if a.only:
        kinds = {k: v for k, v in kinds.items() if k in a.only.split(",")}
    parallel = a.parallel or (6 if soak else 3)
    # enough workflows that the workers are still working when the last kill comes
    per_kill = {"c": 6, "python": 3, "ruby": 2}
    tmp = os.path.join(ROOT, "build", "reliability", "kill")  # kept when an invariant broke
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    dbkinds = a.db.split(",")
    if "postgres" in dbkinds and not PG_URL:
        print("SUMMARY reliability kill-postgres 0 1  # AJ_TEST_PG_URL is not set")
        dbkinds.remove("postgres")
    pairs = [(dbkind, kind, kills) for dbkind in dbkinds for kind, kills in kinds.items()]
    pairs.sort(key=lambda p: -p[2] * PACE[p[1].split("-")[0]])
    out = threading.Lock()
    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        futures = {pool.submit(one_pair, dbkind, kind, kills,
                               a.keys or max(60, kills * per_kill[kind.split("-")[0]]), tmp,
                               out): dbkind
                   for dbkind, kind, kills in pairs}
        results = [(futures[f], f.result()) for f in concurrent.futures.as_completed(futures)]
    elapsed = time.time() - started
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    clean = True
    for dbkind in dbkinds:
        mine = [r for d, r in results if d == dbkind]
        total = {k: sum(r[k] for r in mine) for k in ("kills", "self_kills", "runs", "steps",
                                                       "recovered", "duplicates", "lost",
                                                       "stranded")}
        clean = clean and total["duplicates"] == total["lost"] == total["stranded"] == 0
        print(f"FIGURES kill {dbkind} total: " +
              ", ".join(f"{k} {v}" for k, v in total.items()), flush=True)
        print(f"ROW | kill anywhere, {names[dbkind]} | {total['kills']:,} kills "
              f"({total['self_kills']:,} at chosen points), {total['runs']:,} runs, "
              f"{total['steps']:,} steps, duplicates {total['duplicates']}, lost "
              f"{total['lost']}, stranded {total['stranded']}; recovery handed back "
              f"{total['recovered']:,} runs |", flush=True)
        passed = sum(1 for r in mine if r["ok"])
        print(f"SUMMARY reliability kill-{dbkind} {passed} {len(mine) - passed}", flush=True)
    print(f"kill: {len(pairs)} kinds and databases, {parallel} at a time, {elapsed:.0f} s",
          flush=True)
    if not clean:
        print(f"the databases of the failed kinds are kept in {tmp}", flush=True)
    elif all(r["ok"] for _, r in results):
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
