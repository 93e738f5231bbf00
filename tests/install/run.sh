#!/usr/bin/env bash
# The installed C library, found the ways a C programmer finds a library:
#   files       `make install PREFIX=...` (cmake --install) installs the header, the static
#               library, the shared one with its SONAME, acidic_job.pc and the CMake
#               package files
#   pkg-config  tests/install/consumer.c compiled with `pkg-config --cflags --libs
#               acidic_job`, run, and linked to the installed libacidic_job.so
#   static      the same with `pkg-config --static` against a copy of the prefix holding
#               only libacidic_job.a: the program does not need libacidic_job.so, and
#               without --static the link fails (Requires.private is what makes it work)
#   cmake       tests/install/cmake (find_package(acidic_job)) builds and runs against the
#               shared target and the static one
# Each program opens a SQLite store (the core creates its tables: checked) and defines a
# workflow. Prints "SUMMARY install <part> <passed> <failed>"; exits non-zero on failure.
#   BUILD_DIR=DIR  the build to install (default: build, as `make install`)
set -uo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
tmp="$(mktemp -d /tmp/aj-install.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
prefix="$tmp/prefix"
failed=0

# part NAME COMMAND...: run a check, print its SUMMARY line, show its log on failure.
part() {
  local name="$1"; shift
  if ( "$@" ) >"$tmp/$name.log" 2>&1; then # a subshell: its settings stay its own
    echo "SUMMARY install $name 1 0"
  else
    echo "!! install: $name failed:" >&2
    grep -v '^SUMMARY' "$tmp/$name.log" >&2
    echo "SUMMARY install $name 0 1"
    failed=1
  fi
}

# has_tables DB: the store opened by the program created the acidic_job tables.
has_tables() {
  /usr/bin/python3 - "$1" <<'EOF'
import sqlite3, sys
names = {r[0] for r in sqlite3.connect(sys.argv[1]).execute("SELECT name FROM sqlite_master")}
missing = {"acidic_job_keys", "staged_acidic_jobs"} - names
sys.exit(f"tables missing: {sorted(missing)}" if missing else 0)
EOF
}

# run_consumer PROGRAM: it runs, prints what it did, and its store has the tables.
run_consumer() {
  local db="$tmp/$(basename "$1").db"
  rm -f "$db"
  local out
  out="$("$1" "$db")" || return 1
  echo "$out"
  [[ "$out" =~ ^acidic_job\ [0-9]+\.[0-9]+\.[0-9]+:\ sqlite\ store,\ 1\ step$ ]] || return 1
  has_tables "$db"
}

# needs PROGRAM LIBRARY: PROGRAM's dynamic section names LIBRARY.
needs() { readelf -d "$1" | grep "NEEDED.*\[$2" >/dev/null; }

check_files() {
  make install BUILD_DIR="${BUILD_DIR:-build}" PREFIX="$prefix" || return 1
  local libdir="$prefix/lib" soname
  # the SONAME carries major.minor before 1.0 (every 0.x minor may change the ABI)
  soname="$(readelf -d "$libdir/libacidic_job.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')"
  echo "SONAME: $soname"
  # (set -e does not apply here: this runs as an `if` condition)
  test -f "$prefix/include/acidic_job.h" &&
    test -f "$libdir/libacidic_job.a" &&
    [[ "$soname" =~ ^libacidic_job\.so\.[0-9]+(\.[0-9]+)?$ ]] &&
    test -f "$libdir/$soname" &&
    test "$(readlink "$libdir/libacidic_job.so")" = "$soname" &&
    grep -qx "Requires.private: sqlite3 libpq" "$libdir/pkgconfig/acidic_job.pc" &&
    test -f "$libdir/cmake/acidic_job/acidic_job-config.cmake" &&
    test -f "$libdir/cmake/acidic_job/acidic_job-config-version.cmake" &&
    # only the public API is exported
    tests/c/check_exports.sh "$libdir/libacidic_job.so" "$prefix/include/acidic_job.h"
}

check_pkg_config() {
  export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
  local libdir
  libdir="$(pkg-config --variable=libdir acidic_job)" || return 1
  # shellcheck disable=SC2046 # pkg-config prints one flag per word
  cc -std=c11 tests/install/consumer.c $(pkg-config --cflags --libs acidic_job) \
     -Wl,-rpath,"$libdir" -o "$tmp/consumer" || return 1
  needs "$tmp/consumer" libacidic_job.so || return 1
  ldd "$tmp/consumer" | grep "libacidic_job.so.* => $libdir/" >/dev/null || return 1
  run_consumer "$tmp/consumer"
}

check_static() {
  local static_prefix="$tmp/static-prefix"
  cp -a "$prefix" "$static_prefix" && rm "$static_prefix"/lib/libacidic_job.so* || return 1
  export PKG_CONFIG_PATH="$static_prefix/lib/pkgconfig"
  # Debian's libpq.pc names libpq's own static libraries, libpgcommon and libpgport, which
  # live in $(pg_config --pkglibdir) (postgresql-server-dev-15).
  local pg_libs
  pg_libs="-L$(pg_config --pkglibdir)" || return 1
  echo "without --static, the link must fail (SQLite and libpq are missing from it):"
  # shellcheck disable=SC2046
  if cc -std=c11 tests/install/consumer.c $(pkg-config --cflags --libs acidic_job) \
        -o "$tmp/consumer-no-static"; then
    echo "linked without SQLite and libpq: was libacidic_job.a used at all?"
    return 1
  fi
  echo "with --static:"
  # shellcheck disable=SC2046
  cc -std=c11 tests/install/consumer.c $(pkg-config --static --cflags --libs acidic_job) \
     $pg_libs -o "$tmp/consumer-static" || return 1
  ! needs "$tmp/consumer-static" libacidic_job || return 1
  run_consumer "$tmp/consumer-static"
}

check_cmake() {
  cmake -S tests/install/cmake -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$prefix" &&
    cmake --build "$tmp/cmake" || return 1
  needs "$tmp/cmake/consumer_shared" libacidic_job.so || return 1
  ! needs "$tmp/cmake/consumer_static" libacidic_job || return 1
  run_consumer "$tmp/cmake/consumer_shared" && run_consumer "$tmp/cmake/consumer_static"
}

part files check_files
if [ "$failed" -eq 0 ]; then
  part pkg-config check_pkg_config
  part static check_static
  part cmake check_cmake
else
  for p in pkg-config static cmake; do echo "SUMMARY install $p 0 1"; done
fi
exit "$failed"
