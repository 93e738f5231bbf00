#!/usr/bin/env bash
# Install the Debian packages acidic_job builds and tests with (idempotent; offline
# apart from Debian's own archive). Skips apt entirely when everything is present.
set -euo pipefail

PACKAGES=(
  # C core
  build-essential cmake pkg-config libsqlite3-dev libpq-dev libcmocka-dev
  clang libclang-rt-14-dev
  # static linking through `pkg-config --static acidic_job` (tests/install): Debian's
  # libpq.pc lists libpq's own private libraries
  libkrb5-dev libldap-dev zlib1g-dev postgresql-server-dev-15
  # services for the tests
  postgresql-15 redis-server
  # Ruby gem
  ruby ruby-dev rake ruby-minitest ruby-activerecord ruby-activejob ruby-actionmailer
  ruby-railties ruby-globalid ruby-sidekiq ruby-redis ruby-sqlite3 ruby-pg
  ruby-thor ruby-progressbar # the acidic-job command
  # Ruby: rake compile, the Bundler test, the 0.7.0-style compat suite
  rake-compiler ruby-bundler ruby-database-cleaner git
  ruby-stackprof # BENCH_PROFILE=1 make bench
  # Python package
  python3-dev python3-venv python3-setuptools python3-wheel python3-pip python3-pytest
  python3-hypothesis python3-celery python3-rq python3-redis python3-psycopg python3-psycopg2
  python3-mypy
  # the dashboard (web/): its Rack server, and its tests in a real headless Chromium
  ruby-rack ruby-webrick chromium chromium-driver python3-selenium python3-pil
  # the acidic-job command (Python): its arguments and its tables and progress bars
  python3-click python3-rich
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
