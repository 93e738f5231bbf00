#!/usr/bin/env bash
# The fresh-clone check: the quick starts of README.md (and of the Ruby and Python READMEs)
# are extracted from the READMEs themselves (tests/readme/extract.py: the block after each
# "<!-- quickstart: LANG ... -->" marker) and run as written, with only the database path
# substituted, so the READMEs cannot drift from the code:
#   c       compiled with `pkg-config --cflags --libs acidic_job` against the library
#           installed by `make install` into a temporary prefix (-Wall -Wextra -Werror)
#   ruby    loaded into the application it names (tests/readme/ruby_app.rb), with the gem
#           installed as a user does (scripts/install-gem.sh), its job performed
#   python  run inside the application it names (tests/readme/python_app.py), with the
#           package installed as the README says (scripts/install-python.sh)
# Each runs twice, in two processes: both succeed, the database holds one finished run,
# the second run writes nothing, and no outside call (Stripe, mail, Celery) happens twice.
# Prints "SUMMARY readme <readme>-<lang> <passed> <failed>".
set -uo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
tmp="$(mktemp -d /tmp/aj-readme.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
here="$root/tests/readme"
failed=0

if ! /usr/bin/python3 "$here/extract.py" "$tmp/qs" README.md bindings/ruby/README.md \
       bindings/python/README.md >"$tmp/blocks" 2>"$tmp/extract.log"; then
  cat "$tmp/extract.log" >&2
  echo "SUMMARY readme extract 0 1"
  exit 1
fi

export GEM_HOME="$root/build/installed/ruby-gems"
GEM_PATH="$GEM_HOME:$(env -u GEM_HOME -u GEM_PATH gem env gempath)"
export GEM_PATH
venv="$root/build/installed/python-venv"
prefix="$tmp/prefix"

install_for() {
  case "$1" in
    c) make install PREFIX="$prefix" >"$tmp/make-install.log" 2>&1 || { cat "$tmp/make-install.log"; return 1; } ;;
    ruby) scripts/install-gem.sh "$GEM_HOME" ;;
    python) scripts/install-python.sh "$venv" ;;
  esac
}

# run_block LANG FILE DATABASE: one run of the quick start, in a process of its own
run_block() {
  local dir="${2%.*}"
  case "$1" in
    c) (cd "$dir" && "$dir/program") ;;
    ruby) (cd "$dir" && ruby "$here/ruby_app.rb" "$2" "$3" "$dir/calls") ;;
    python) (cd "$dir" && "$venv/bin/python" "$here/python_app.py" "$2" "$3" "$dir/calls") ;;
  esac
}

# check_block LANG FILE DATABASE
check_block() {
  local lang="$1" file="$2" db="$3" dir="${2%.*}"
  # a quick start that names no database runs on its application's (Ruby: ActiveRecord's)
  [ "$db" != - ] || db="$dir/app.db"
  install_for "$lang" || return 1
  if [ "$lang" = c ]; then
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
    # shellcheck disable=SC2046 # pkg-config prints one flag per word
    cc -std=c11 -Wall -Wextra -Werror "$file" $(pkg-config --cflags --libs acidic_job) \
       -Wl,-rpath,"$(pkg-config --variable=libdir acidic_job)" -o "$dir/program" || return 1
  fi
  echo "-- first run"
  run_block "$lang" "$file" "$db" || return 1
  /usr/bin/python3 "$here/check_db.py" "$db" save "$dir/rows.json" || return 1
  echo "-- second run"
  run_block "$lang" "$file" "$db" || return 1
  /usr/bin/python3 "$here/check_db.py" "$db" compare "$dir/rows.json" || return 1
  if [ "$lang" != c ]; then
    echo "-- outside calls:"
    cat "$dir/calls" 2>/dev/null
    # some, and none twice
    [ -s "$dir/calls" ] && [ -z "$(sort "$dir/calls" | uniq -d)" ] || return 1
  fi
}

while read -r lang file db; do
  name="$(basename "${file%.*}")"
  if (check_block "$lang" "$file" "$db") >"$tmp/$name.log" 2>&1; then
    echo "SUMMARY readme $name 1 0"
  else
    echo "!! readme: the $lang quick start ($name) did not run as written:" >&2
    grep -v '^SUMMARY' "$tmp/$name.log" >&2
    echo "SUMMARY readme $name 0 1"
    failed=1
  fi
done <"$tmp/blocks"
exit "$failed"
