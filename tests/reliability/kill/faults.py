"""PostgreSQL faults (issue 9, section 6): the server stopped with -m immediate and -m fast
in the middle of streams of runs.

    faults.py [--soak 0|1] [--only KIND,...]

For each worker kind (C, Python and Ruby on a store of their own: URL / database_url; C on
its own libpq connection lent to the core; Python on a factory of borrowed psycopg
connections; Ruby ActiveJob on ActiveRecord), two workers run the same
stream of workflows with --final (they keep going until every run has finished) while the
server is restarted several times, alternately with `pg_ctl restart -m immediate` and
`-m fast`. Nothing restarts the workers: each must recover by itself (its store reconnects,
recovery hands back the runs a lost connection failed) and exit with every run finished, and the tables must show no step duplicated or lost, nothing stranded (the
invariants of driver.py). Prints "FIGURES faults ..." and
"SUMMARY reliability faults-postgres <passed> <failed>".
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from driver import (FAULT_KINDS, PG_URL, ROOT, Database, Worker, check, recovered,  # noqa: E402
                    worker_command)


def restart(mode: str) -> None:
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "pg-server.sh"), "restart",
                    os.environ["AJ_TEST_PG_DIR"], mode], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--soak", default="0")
    ap.add_argument("--only", default="")
    a = ap.parse_args()
    if not PG_URL or not os.environ.get("AJ_TEST_PG_DIR"):
        print("SUMMARY reliability faults-postgres 0 1  # AJ_TEST_PG_URL / AJ_TEST_PG_DIR unset")
        return 1
    soak = a.soak == "1"
    restarts = 20 if soak else 4  # alternately -m immediate and -m fast
    keys = 400 if soak else 60
    kinds = [k for k in FAULT_KINDS if not a.only or k in a.only.split(",")]
    tmp = os.path.join(ROOT, "build", "reliability", "faults")  # logs, kept when a kind fails
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    passed = failed = 0
    total = {"restarts": 0, "immediate": 0, "fast": 0, "runs": 0, "steps": 0,
             "duplicates": 0, "lost": 0, "stranded": 0, "handed_back": 0}
    rng = random.Random(9)
    for kind in kinds:
        db = Database("postgres", tmp)
        # ms between runs: a pass outlasts the restarts (a restart takes up to a second or
        # two on the loaded machine)
        pace = 120 if soak else 100
        log_path = os.path.join(tmp, f"{kind}.log")
        started = time.time()
        with open(log_path, "w") as log:
            cmd = worker_command(kind, db.url, keys) + ["--final", "--pace-ms", str(pace)]
            workers = [Worker(cmd, log), Worker(cmd, log)]
            for w in workers:
                w.ready.wait(60)
            modes = []
            under_load = 0
            for r in range(restarts):
                time.sleep(rng.uniform(0.2, 0.8))
                mode = "immediate" if r % 2 == 0 else "fast"
                under_load += any(w.proc.poll() is None for w in workers)
                restart(mode)
                modes.append(mode)
            exits = []
            give_up = time.time() + 90  # the workers' time to finish after the last restart
            for w in workers:
                try:
                    exits.append(w.proc.wait(max(1.0, give_up - time.time())))
                except subprocess.TimeoutExpired:
                    w.kill()
                    exits.append("hung")
        done = all(rc == 0 for rc in exits) and all("DONE" in w.lines for w in workers)
        handed_back = sum(recovered(w.lines) for w in workers)
        with open(log_path) as f:
            errors = sum(1 for _ in f)
        broken = check(db, keys)
        stranded = broken["unfinished"] + broken["locked"] + broken["staged_left"] + \
            broken["batches_left"]
        # A fast pass may end before the last restarts: those prove nothing, and the
        # figures say how many met running workers; at least half of them must have.
        ok = done and not any(broken.values()) and under_load >= max(1, restarts // 2)
        print(f"FIGURES faults {kind} postgres: restarts {len(modes)} "
              f"({modes.count('immediate')} immediate, {modes.count('fast')} fast, "
              f"{under_load} while workers ran), runs {keys}, "
              f"steps {3 * keys}, duplicates {broken['duplicates']}, lost {broken['lost']}, "
              f"stranded {stranded}, undelivered {broken['undelivered']}, errors the workers "
              f"met {errors}, runs recovery handed back {handed_back}, worker exits {exits}, "
              f"{time.time() - started:.0f} s", flush=True)
        if not ok:
            with open(log_path) as f:
                lines = f.read().splitlines()
            distinct = sorted(set(line[:220] for line in lines))[:12]
            print(f"!! {kind}: the workers did not recover by themselves; distinct errors "
                  f"({len(lines)} lines):\n  " + "\n  ".join(distinct), flush=True)
        else:
            db.drop()
        passed, failed = passed + ok, failed + (not ok)
        for name, value in (("restarts", len(modes)), ("immediate", modes.count("immediate")),
                            ("fast", modes.count("fast")), ("runs", keys),
                            ("steps", 3 * keys), ("duplicates", broken["duplicates"]),
                            ("lost", broken["lost"]), ("stranded", stranded),
                            ("handed_back", handed_back)):
            total[name] += value
    print(f"ROW | PostgreSQL faults | {total['restarts']} restarts ({total['immediate']} "
          f"`-m immediate`, {total['fast']} `-m fast`) under {len(kinds)} worker kinds, "
          f"{total['runs']:,} runs, {total['steps']:,} steps, duplicates "
          f"{total['duplicates']}, lost {total['lost']}, stranded {total['stranded']}; "
          f"recovery handed back {total['handed_back']} runs |", flush=True)
    print(f"SUMMARY reliability faults-postgres {passed} {failed}", flush=True)
    if failed:
        print(f"the worker logs are kept in {tmp}", flush=True)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
