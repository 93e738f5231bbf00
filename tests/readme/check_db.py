"""What a quick start left in its database (tests/readme/run.sh).

    python3 check_db.py DATABASE save FILE      after the first run: the application's tables
    python3 check_db.py DATABASE compare FILE   after the second: nothing written again

Both check that the database holds exactly one acidic_job run and that it has finished.
"""
import json
import sqlite3
import sys

database, action, snapshot = sys.argv[1:]
db = sqlite3.connect(database)
runs = db.execute("SELECT recovery_point, error_object FROM acidic_job_keys").fetchall()
if len(runs) != 1 or runs[0][0] != "FINISHED":
    sys.exit(f"expected one finished run in acidic_job_keys, found {runs}")
tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                   "name NOT LIKE 'sqlite_%' AND name NOT LIKE '%acidic_job%'")]
if not tables:
    sys.exit("the quick start wrote no table of its own")
counts = {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
if action == "save":
    if not any(counts.values()):
        sys.exit(f"the quick start's steps wrote no row: {counts}")
    with open(snapshot, "w") as f:
        json.dump(counts, f)
else:
    with open(snapshot) as f:
        first = json.load(f)
    if first != counts:
        sys.exit(f"the second run wrote again: after the first {first}, after the second {counts}")
print(f"one finished run; rows: {counts}")
