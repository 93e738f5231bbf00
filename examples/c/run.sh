#!/usr/bin/env bash
# The C demo: build the example alone (its own build folder, no test suite), then run the
# ride booking twice on build/demo/c-rides.db: Stripe fails on the first run; the second
# run resumes at the charge step without creating a second ride. Prints the story only;
# a failing build prints its log.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
build="$root/build/demo/c"
mkdir -p "$build"
if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAJ_BUILD_TESTS=OFF &&
       cmake --build "$build" --target ride_booking -j "$(nproc 2>/dev/null || echo 2)"; } \
     >"$build/build.log" 2>&1; then
  cat "$build/build.log" >&2
  exit 1
fi

db="$root/build/demo/c-rides.db"
rm -f "$db" "$db-wal" "$db-shm"
echo "---- first run: Stripe is down ----"
"$build/ride_booking" --db "$db" --stripe-fails
echo
echo "---- second run: Stripe is back ----"
"$build/ride_booking" --db "$db"
