"""Kill anywhere (issue 9, section 6): workers SIGKILLed at random, then rerun and drain.

    driver.py [--soak 0|1] [--only LANG-MODE,...] [--db sqlite,postgres]

For each worker kind (C on a URL store, Python on a URL store and on a borrowed sqlite3 /
psycopg connection, Ruby ActiveJob on ActiveRecord) and each database (a fresh SQLite file,
a fresh PostgreSQL schema of AJ_TEST_PG_URL), two workers work through the same workflows
while this driver SIGKILLs one of them at a random moment and starts another, until the
kind's share of kills is reached; some workers also kill themselves at chosen points
(inside a step, between commit and push, inside an awaited child). Then one worker reruns
every workflow with the same keys and drains until all have finished, and the tables are
checked:
  - each step row exactly once (duplicates: more than one; lost: none);
  - every run finished;
  - every staged job delivered at least once and acknowledged (staged_acidic_jobs empty);
  - every awaiting parent resumed exactly once (its s3 row once, no batch left);
  - nothing left locked.
Kills at acquisition and during recovery, and the recovery sweep itself, need the next core
(aj_store_set_events, aj_store_recover): each kind is asked for them once and the answer
"unavailable" is reported as a skip.
Prints per kind and database "FIGURES ..." and "SUMMARY reliability kill-<db> <passed> <failed>".
"""
from __future__ import annotations

import argparse
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
LOCK_MS = 400  # short, so that runs of killed workers are taken over soon (no recovery yet)

# kind (language-mode) -> share of the kills per database (short form: 200 in all per database)
KINDS = {"c-url": 80, "python-url": 40, "python-borrowed": 40, "ruby-activerecord": 40}
# the fault suite also runs the worker kinds the kill counts leave out
FAULT_KINDS = list(KINDS) + ["c-borrowed", "ruby-owned"]
SOAK_KINDS = {"c-url": 3000, "python-url": 1000, "python-borrowed": 500, "ruby-activerecord": 500}


def worker_command(kind: str, url: str, keys: int) -> List[str]:
    lang, mode = kind.split("-", 1)
    if lang == "c":
        cmd = [os.path.join(ROOT, "build", "reliability", "kill_worker"), "--mode", mode]
    elif lang == "python":
        cmd = [sys.executable, os.path.join(HERE, "worker.py"), "--mode", mode]
    else:
        cmd = ["ruby", os.path.join(HERE, "worker.rb"), "--mode", mode]
    return cmd + ["--db", url, "--keys", str(keys), "--lock-ms", str(LOCK_MS)]


class Worker:
    """A worker process; its stdout is read by a thread (READY, OPENFAIL, UNAVAILABLE)."""

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
            if line.startswith(("READY", "UNAVAILABLE")):
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
    """Two workers at a time, SIGKILLed at random until `kills` kills; then the rerun."""
    rng = random.Random(f"{kind}-{db.kind}-{kills}")
    base = worker_command(kind, db.url, keys)
    self_kill = ["--kill-at", "step:20", "--kill-at", "push:20", "--kill-at", "child:40"]

    def spawn() -> Worker:
        w = Worker(base + (self_kill if rng.random() < 0.5 else []), log)
        w.kills_itself = len(w.proc.args) > len(base)
        return w

    figures = {"kills": 0, "self_kills": 0, "open_failures": 0, "crashes": 0,
               "self_step": 0, "self_push": 0, "self_child": 0}

    def count_self_kill(w: Worker) -> None:
        for line in w.lines:
            if line.startswith("SELFKILL "):
                figures["self_" + line.split()[1]] += 1
    workers = [spawn(), spawn()]
    # how long a worker lives before the driver kills it (after it is READY)
    lifetime = {"c": (0.05, 0.4), "python": (0.1, 0.8), "ruby": (0.2, 1.2)}[kind.split("-")[0]]
    # a bound on the chaos, generous for the slowest starts (Ruby loads Rails in ~1 s)
    deadline = time.time() + 120 + kills * {"c": 1.5, "python": 3, "ruby": 8}[kind.split("-")[0]]
    while figures["kills"] < kills and time.time() < deadline:
        victim = rng.randrange(len(workers))
        w = workers[victim]
        w.ready.wait(30)
        # a worker that kills itself at chosen points gets the time to reach them
        time.sleep(rng.uniform(*lifetime) * (2 if w.kills_itself else 1))
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
        workers[victim] = spawn()
    for w in workers:
        w.kill()
        figures["open_failures"] += sum(1 for line in w.lines if line.startswith("OPENFAIL"))
    # The rerun: same keys, after the dead workers' locks have expired (there is no
    # recovery sweep yet), until every run has finished; then drain.
    time.sleep(LOCK_MS / 1000 + 0.2)
    final = Worker(base + ["--final"], log)
    try:
        final.proc.wait(360)
    except subprocess.TimeoutExpired:
        final.kill()
    figures["rerun_ok"] = int(final.proc.returncode == 0 and "DONE" in final.lines)
    figures["open_failures"] += sum(1 for line in final.lines if line.startswith("OPENFAIL"))
    return figures


def unavailable_points(kind: str, db: Database, log: Any) -> List[str]:
    """Ask a worker for the kill points and the recovery the next core brings."""
    missing = []
    for extra in (["--kill-at", "acquire:5"], ["--kill-at", "recovery:5"], ["--recover"]):
        w = Worker(worker_command(kind, db.url, 1) + extra, log)
        try:
            w.proc.wait(60)
        except subprocess.TimeoutExpired:
            w.kill()
        said = [line for line in w.lines if line.startswith("UNAVAILABLE")]
        if said:
            missing.append(said[0])
        else:
            w.kill()
    return missing


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--soak", default="0")
    ap.add_argument("--only", default="")
    ap.add_argument("--db", default="sqlite,postgres")
    ap.add_argument("--keys", type=int, default=0)
    a = ap.parse_args()
    soak = a.soak == "1"
    kinds = SOAK_KINDS if soak else KINDS
    if a.only:
        kinds = {k: v for k, v in kinds.items() if k in a.only.split(",")}
    # enough workflows that the workers are still working when the last kill comes
    per_kill = {"c": 6, "python": 3, "ruby": 2}
    tmp = os.path.join(ROOT, "build", "reliability", "kill")  # kept when an invariant broke
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    totals: Dict[str, Dict[str, int]] = {}
    for dbkind in a.db.split(","):
        if dbkind == "postgres" and not PG_URL:
            print("SUMMARY reliability kill-postgres 0 1  # AJ_TEST_PG_URL is not set")
            continue
        passed = failed = 0
        total = totals.setdefault(dbkind, {"kills": 0, "runs": 0, "steps": 0, "duplicates": 0,
                                           "lost": 0, "stranded": 0})
        for kind, kills in kinds.items():
            keys = a.keys or max(60, kills * per_kill[kind.split("-")[0]])
            db = Database(dbkind, tmp)
            log_path = os.path.join(tmp, f"{kind}-{dbkind}.log")
            with open(log_path, "w") as log:
                started = time.time()
                fig = chaos(kind, db, keys, kills, log)
                broken = check(db, keys)
                missing = unavailable_points(kind, db, log)
            stranded = broken["unfinished"] + broken["locked"] + broken["staged_left"] + \
                broken["batches_left"]
            ok = fig["kills"] >= kills and fig["rerun_ok"] and not fig["crashes"] and \
                not any(broken.values()) and not fig["open_failures"]
            print(f"FIGURES kill {kind} {dbkind}: kills {fig['kills']} (self {fig['self_kills']}: "
                  f"in a step {fig['self_step']}, between commit and push {fig['self_push']}, "
                  f"in an awaited child {fig['self_child']}), "
                  f"runs {keys}, steps {3 * keys}, duplicates {broken['duplicates']}, "
                  f"lost {broken['lost']}, stranded {stranded} (unfinished "
                  f"{broken['unfinished']}, locked {broken['locked']}, staged left "
                  f"{broken['staged_left']}, batches left {broken['batches_left']}), "
                  f"undelivered {broken['undelivered']}, open failures {fig['open_failures']}, "
                  f"crashes {fig['crashes']}, rerun {'ok' if fig['rerun_ok'] else 'FAILED'}, "
                  f"{time.time() - started:.0f} s", flush=True)
            for line in missing:
                print(f"SKIP {kind} {dbkind}: {line}", flush=True)
            if not ok:
                with open(log_path) as f:
                    tail = f.read()[-3000:]
                why = [w for w, bad in (
                    (f"only {fig['kills']} of {kills} kills in the time allowed",
                     fig["kills"] < kills),
                    ("the rerun did not finish every run", not fig["rerun_ok"]),
                    (f"{fig['crashes']} workers exited on their own", fig["crashes"]),
                    (f"{fig['open_failures']} stores failed to open", fig["open_failures"]),
                    ("an invariant broke (figures above)", any(broken.values()))) if bad]
                print(f"!! {kind} on {dbkind}: {'; '.join(why)}; worker stderr (tail):\n{tail}",
                      flush=True)
            passed, failed = passed + ok, failed + (not ok)
            for name, value in (("kills", fig["kills"]), ("runs", keys), ("steps", 3 * keys),
                                ("duplicates", broken["duplicates"]), ("lost", broken["lost"]),
                                ("stranded", stranded)):
                total[name] += value
            if ok:
                db.drop()
        print(f"FIGURES kill {dbkind} total: " +
              ", ".join(f"{k} {v}" for k, v in total.items()), flush=True)
        print(f"SUMMARY reliability kill-{dbkind} {passed} {failed}", flush=True)
    broken = any(v["duplicates"] or v["lost"] or v["stranded"] for v in totals.values())
    if broken:
        print(f"the databases of the failed kinds are kept in {tmp}", flush=True)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if all(v["duplicates"] == v["lost"] == v["stranded"] == 0 for v in totals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
