#!/usr/bin/env bash
# The Python demo: install the package into build/demo/python-venv (pip install
# --no-build-isolation ., again only when its sources changed), then run the ride-booking
# job twice on build/demo/python-rides.db: Stripe fails on the first run; the second run
# resumes at the charge step without creating a second ride. Prints the story only; a
# failing install prints its log.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
demo="$root/build/demo"
venv="$demo/python-venv"
mkdir -p "$demo"

sources="$(find setup.py MANIFEST.in core bindings/python \( -name '*.egg-info' -o -name __pycache__ \) \
           -prune -o -type f -print0 | sort -z | xargs -0 sha1sum | sha1sum)"
if [ "$(cat "$venv/.sources" 2>/dev/null)" != "$sources" ]; then
  if ! { { [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv --system-site-packages "$venv"; } &&
         "$venv/bin/pip" install --no-build-isolation --no-deps --force-reinstall "$root"; } \
       >"$demo/python-pip.log" 2>&1; then
    cat "$demo/python-pip.log" >&2
    exit 1
  fi
  echo "$sources" >"$venv/.sources"
fi

db="$demo/python-rides.db"
rm -f "$db" "$db-wal" "$db-shm"
# run from the build folder, so the source package (without its compiled part) is not imported
cd "$demo"
echo "---- first run: Stripe is down ----"
"$venv/bin/python" "$root/examples/python/ride_booking.py" --db "$db" --stripe-fails
echo
echo "---- second run: Stripe is back ----"
"$venv/bin/python" "$root/examples/python/ride_booking.py" --db "$db"
