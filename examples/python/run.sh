#!/usr/bin/env bash
# The Python demo: install the package into build/python-venv (pip install
# --no-build-isolation .) and run the ride-booking job twice on build/demo/python-rides.db:
# Stripe fails on the first run; the second run resumes at the charge step without
# creating a second ride.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
venv="$root/build/python-venv"
demo="$root/build/demo"
mkdir -p "$demo"
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
echo "building and installing the acidic_job Python package..."
"$venv/bin/pip" install --no-build-isolation --no-deps -q --force-reinstall "$root" >/dev/null

db="$demo/python-rides.db"
rm -f "$db" "$db-wal" "$db-shm"
# run from the build folder, so the source package (without its compiled part) is not imported
cd "$demo"
echo
echo "---- first run: Stripe is down ----"
"$venv/bin/python" "$root/examples/python/ride_booking.py" --db "$db" --stripe-fails
echo
echo "---- second run: Stripe is back ----"
"$venv/bin/python" "$root/examples/python/ride_booking.py" --db "$db"

rides="$("$venv/bin/python" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM rides").fetchone()[0])' "$db")"
echo
if [ "$rides" = "1" ]; then
  echo "OK: one ride, charged once; the retry resumed at create_stripe_charge."
else
  echo "UNEXPECTED: $rides rides" >&2
  exit 1
fi
