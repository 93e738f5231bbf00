#!/usr/bin/env bash
# The Ruby demo: install the gem (scripts/install-gem.sh, into build/installed/ruby-gems),
# then run the ride-booking job twice on build/demo/ruby-rides.db: Stripe fails on the
# first run; the second run resumes at the charge step without creating a second ride.
# Prints the story only; a failing install prints its log.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
demo="$root/build/demo"
mkdir -p "$demo"

export GEM_HOME="$root/build/installed/ruby-gems"
GEM_PATH="$GEM_HOME:$(env -u GEM_HOME -u GEM_PATH gem env gempath)"
export GEM_PATH
scripts/install-gem.sh "$GEM_HOME"

db="$demo/ruby-rides.db"
rm -f "$db" "$db-wal" "$db-shm"
echo "---- first run: Stripe is down ----"
ruby examples/ruby/ride_booking.rb --db "$db" --stripe-fails
echo
echo "---- second run: Stripe is back ----"
ruby examples/ruby/ride_booking.rb --db "$db"
