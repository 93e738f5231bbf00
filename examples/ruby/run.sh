#!/usr/bin/env bash
# The Ruby demo: install the gem (gem build + gem install --local into build/demo/ruby-gems,
# again only when its sources changed), then run the ride-booking job twice on
# build/demo/ruby-rides.db: Stripe fails on the first run; the second run resumes at the
# charge step without creating a second ride. Prints the story only; a failing install
# prints its log.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
demo="$root/build/demo"
mkdir -p "$demo"

export GEM_HOME="$demo/ruby-gems"
GEM_PATH="$GEM_HOME:$(env -u GEM_HOME -u GEM_PATH gem env gempath)"
export GEM_PATH
sources="$(find acidic_job.gemspec core bindings/ruby -type f ! -name '*.o' ! -name '*.so' -print0 |
           sort -z | xargs -0 sha1sum | sha1sum)"
if [ "$(cat "$GEM_HOME/.sources" 2>/dev/null)" != "$sources" ]; then
  rm -rf "$GEM_HOME"
  mkdir -p "$GEM_HOME"
  if ! { gem build acidic_job.gemspec --output "$demo/acidic_job-demo.gem" &&
         gem install --local --no-document "$demo/acidic_job-demo.gem"; } >"$demo/ruby-gem.log" 2>&1; then
    cat "$demo/ruby-gem.log" >&2
    exit 1
  fi
  echo "$sources" >"$GEM_HOME/.sources"
fi

db="$demo/ruby-rides.db"
rm -f "$db" "$db-wal" "$db-shm"
echo "---- first run: Stripe is down ----"
ruby examples/ruby/ride_booking.rb --db "$db" --stripe-fails
echo
echo "---- second run: Stripe is back ----"
ruby examples/ruby/ride_booking.rb --db "$db"
