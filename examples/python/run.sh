#!/usr/bin/env bash
# The Python demo: install the package (scripts/install-python.sh, into
# build/installed/python-venv), then run the ride-booking job twice on
# build/demo/python-rides.db: Stripe fails on the first run; the second run resumes at the
# charge step without creating a second ride. Prints the story only; a failing install
# prints its log.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
demo="$root/build/demo"
venv="$root/build/installed/python-venv"
mkdir -p "$demo"

scripts/install-python.sh "$venv"

db="$demo/python-rides.db"
rm -f "$db" "$db-wal" "$db-shm"
# run from the build folder, so the source package (without its compiled part) is not imported
cd "$demo"
echo "---- first run: Stripe is down ----"
"$venv/bin/python" "$root/examples/python/ride_booking.py" --db "$db" --stripe-fails
echo
echo "---- second run: Stripe is back ----"
"$venv/bin/python" "$root/examples/python/ride_booking.py" --db "$db"
