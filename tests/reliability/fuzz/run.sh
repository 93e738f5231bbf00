#!/usr/bin/env bash
# libFuzzer targets for the core's parsers (clang -fsanitize=fuzzer,address,undefined):
#   time          aj_parse_time / aj_format_time round trips
#   redact        aj_redact_url and aj_store_open messages, with the password oracle (run in a
#                 network namespace of its own: unshare -n, so aj_store_open reaches nothing)
#   placeholders  the two `?` -> `$n` rewriters: against the rule (sql, pg) and each other
#   migration     "?column" migration lines
#   host_row      rows reported by a host connection (aj_host_row)
# Each runs SECONDS (default 10; SOAK=1: 180) from the seeds in seeds/ plus the corpus it
# grew before (build/reliability/fuzz/corpus-*). A finding stops its target; the reproducer
# is kept as build/reliability/fuzz/<target>-crash-* and shown with its report.
# Prints "SUMMARY reliability fuzz-<target> <passed> <failed>" per target.
set -uo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
here="$root/tests/reliability/fuzz"
out="$root/build/reliability/fuzz"
mkdir -p "$out"
if [ "${SOAK:-0}" = 1 ]; then seconds="${SECONDS_PER_TARGET:-180}"; else seconds="${SECONDS_PER_TARGET:-10}"; fi
failed=0

build() { # build TARGET [CORE_FILE_INCLUDED_BY_THE_TARGET]
  local target="$1" skip="${2:-none}" srcs=()
  for f in "$root"/core/src/*.c; do [ "$(basename "$f")" = "$skip" ] || srcs+=("$f"); done
  clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=all -I"$root/core/include" -I"$root/core/src" \
    $(pkg-config --cflags libpq) "${srcs[@]}" "$here/fuzz_$target.c" -lsqlite3 -lpq \
    -o "$out/fuzz_$target" 2>"$out/build-$target.log"
}

# fuzz NAME TARGET [ENV=VALUE...] [-- WRAPPER...]
fuzz() {
  local name="$1" target="$2"; shift 2
  local envs=() wrapper=()
  while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; wrapper=("$@"); break; fi
    envs+=("$1"); shift
  done
  local corpus="$out/corpus-$name"
  mkdir -p "$corpus"
  rm -f "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-*
  local log="$out/$name.log"
  env "${envs[@]}" ASAN_OPTIONS="detect_leaks=1:halt_on_error=1" "${wrapper[@]}" \
    "$out/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$out/$name-" -print_final_stats=1 "$corpus" "$here/seeds/$target" \
    >"$log" 2>&1
  local rc=$?
  local runs
  runs="$(grep -a -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  if [ "$rc" -eq 0 ]; then
    echo "fuzz $name: ${runs:-?} inputs in ${seconds} s, nothing found"
    echo "SUMMARY reliability fuzz-$name 1 0"
  else
    echo "fuzz $name: FOUND after ${runs:-?} inputs:"
    grep -a -v -E '^(INFO|#[0-9]|    #|MS:|base64|Done|stat::|==[0-9]+==WARNING)' "$log" | grep -a -v '^\s*$' | head -15
    for f in "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-*; do
      [ -f "$f" ] && { echo "reproducer $f:"; od -A x -t x1z -v "$f" | head -8; }
    done
    echo "SUMMARY reliability fuzz-$name 0 1"
    failed=1
  fi
}

for t in time redact migration host_row; do
  case $t in migration) skip=migrate.c ;; *) skip=none ;; esac
  build "$t" "$skip" || { cat "$out/build-$t.log"; echo "SUMMARY reliability fuzz-$t 0 1"; failed=1; }
done
build placeholders driver_pg.c ||
  { cat "$out/build-placeholders.log"; echo "SUMMARY reliability fuzz-placeholders 0 1"; failed=1; }

[ -x "$out/fuzz_time" ] && fuzz time time
if [ -x "$out/fuzz_redact" ]; then
  if unshare -n true 2>/dev/null; then
    fuzz redact redact AJ_FUZZ_OPEN=1 -- unshare -n --
  else
    echo "fuzz redact: no network namespace (unshare -n): aj_store_open is not judged"
    fuzz redact redact
  fi
fi
if [ -x "$out/fuzz_placeholders" ]; then
  fuzz placeholders-sql placeholders AJ_FUZZ_REWRITER=sql
  fuzz placeholders-pg placeholders AJ_FUZZ_REWRITER=pg
  fuzz placeholders-agree placeholders AJ_FUZZ_REWRITER=agree
fi
[ -x "$out/fuzz_migration" ] && fuzz migration migration
[ -x "$out/fuzz_host_row" ] && fuzz host_row host_row
exit "$failed"
