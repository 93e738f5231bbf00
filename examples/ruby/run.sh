#!/usr/bin/env bash
# The Ruby demo: install the gem (gem build + gem install --local into build/ruby/demo-gems)
# and run the ride-booking job twice on build/demo/ruby-rides.db: Stripe fails on the
# first run; the second run resumes at the charge step without creating a second ride.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
demo="$root/build/demo"
mkdir -p "$demo" "$root/build/ruby"

export GEM_HOME="$root/build/ruby/demo-gems"
GEM_PATH="$GEM_HOME:$(env -u GEM_HOME -u GEM_PATH gem env gempath)"
export GEM_PATH
version="$(ruby -e 'load ARGV[0]; print AcidicJob::VERSION' bindings/ruby/lib/acidic_job/version.rb)"
gem_file="$root/build/ruby/acidic_job-$version-demo.gem"
echo "building and installing the acidic_job gem..."
gem build acidic_job.gemspec --output "$gem_file" >/dev/null 2>&1
gem install --local --no-document "$gem_file" >/dev/null

db="$demo/ruby-rides.db"
rm -f "$db" "$db-wal" "$db-shm" "$db.retry.json"

echo
echo "---- first run: Stripe is down ----"
ruby examples/ruby/ride_booking.rb --db "$db" --stripe-fails
echo
echo "---- second run: Stripe is back ----"
ruby examples/ruby/ride_booking.rb --db "$db"

rides="$(ruby -rsqlite3 -e 'print SQLite3::Database.new(ARGV[0]).get_first_value("SELECT count(*) FROM rides")' "$db")"
echo
if [ "$rides" = "1" ]; then
  echo "OK: one ride, charged once; the retry resumed at create_stripe_charge."
else
  echo "UNEXPECTED: $rides rides" >&2
  exit 1
fi
