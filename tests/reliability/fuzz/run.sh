#!/usr/bin/env bash
# libFuzzer targets for the core's parsers (clang -fsanitize=fuzzer,address,undefined):
#   time          aj_parse_time / aj_format_time round trips
#   redact        aj_redact_url and aj_store_open messages, with the password oracle (run in a
#                 network namespace of its own: unshare -n, so aj_store_open reaches nothing)
#   placeholders  the core's SQL lexer (sql.c): the `?` -> `$n` rewriter against the rule
#                 (sql), its sizes and counts (size), and the detection of COMMIT / ROLLBACK
#                 / BEGIN inside a step (control)
#   tables        the tables as applications made them (0.7.0's shapes, the columns later
#                 versions added in any letter case, columns of their own, any schema
#                 version): detected, healed, and a run works on them (schema.c; 0.8's
#                 migration-line parser is gone)
#   host_row      rows reported by a host connection (aj_host_row)
# Each target runs SECONDS_PER_TARGET (default 10; SOAK=1: 120; each of the placeholders
# target's three modes half of it, at least 10 s), from the seeds in seeds/ plus the corpus it grew before
# (build/reliability/fuzz/corpus-*); two run at a time (the machine has 2 cores). A finding
# stops its target; the reproducer is kept as build/reliability/fuzz/<name>-crash-* and
# shown with its report.
# Prints per target "fuzz <name>: N inputs in S s, ...", a "ROW | fuzz <name> | ... |" line
# (a row of the README's table) and "SUMMARY reliability fuzz-<name> <passed> <failed>".
set -uo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
here="$root/tests/reliability/fuzz"
out="$root/build/reliability/fuzz"
mkdir -p "$out"
if [ "${SOAK:-0}" = 1 ]; then seconds="${SECONDS_PER_TARGET:-120}"; else seconds="${SECONDS_PER_TARGET:-10}"; fi
mode_seconds=$((seconds / 2 > 10 ? seconds / 2 : 10))
failed=0
flags=(-g -O1 -std=c11 -D_GNU_SOURCE -fno-sanitize-recover=all -I"$root/core/include"
       -I"$root/core/src" $(pkg-config --cflags libpq))

# The core is compiled once with the fuzzer's instrumentation, each target links it.
build_core() {
  rm -rf "$out/core" && mkdir -p "$out/core"
  local f pids=()
  for f in "$root"/core/src/*.c; do
    clang "${flags[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$f" \
      -o "$out/core/$(basename "$f" .c).o" 2>>"$out/build-core.log" &
    pids+=($!)
    if [ "${#pids[@]}" -ge 2 ]; then wait "${pids[0]}" || return 1; pids=("${pids[@]:1}"); fi
  done
  for f in "${pids[@]}"; do wait "$f" || return 1; done
}

build() { # build TARGET
  clang "${flags[@]}" -fsanitize=fuzzer,address,undefined "$here/fuzz_$1.c" "$out"/core/*.o \
    -lsqlite3 -lpq -o "$out/fuzz_$1" 2>"$out/build-$1.log"
}

# fuzz NAME TARGET SECONDS [ENV=VALUE...] [-- WRAPPER...]: writes its report to
# $out/NAME.report
fuzz() {
  local name="$1" target="$2" seconds="$3"; shift 3
  local envs=() wrapper=()
  while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; wrapper=("$@"); break; fi
    envs+=("$1"); shift
  done
  local corpus="$out/corpus-$name" report="$out/$name.report"
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
  {
    if [ "$rc" -eq 0 ]; then
      echo "fuzz $name: ${runs:-?} inputs in ${seconds} s, nothing found"
      printf 'ROW | fuzz %s | %s inputs in %s s, nothing found |\n' "$name" \
        "$(echo "${runs:-0}" | sed -E ':a; s/([0-9])([0-9]{3})($|,)/\1,\2\3/; ta')" "$seconds"
      echo "SUMMARY reliability fuzz-$name 1 0"
    else
      echo "fuzz $name: FOUND after ${runs:-?} inputs:"
      grep -a -v -E '^(INFO|#[0-9]|    #|MS:|base64|Done|stat::|==[0-9]+==WARNING)' "$log" | grep -a -v '^\s*$' | head -15
      for f in "$out/$name"-crash-* "$out/$name"-leak-* "$out/$name"-timeout-*; do
        [ -f "$f" ] && { echo "reproducer $f:"; od -A x -t x1z -v "$f" | head -8; }
      done
      echo "SUMMARY reliability fuzz-$name 0 1"
    fi
  } >"$report"
}

targets=(time redact placeholders tables host_row)
if build_core; then
  for t in "${targets[@]}"; do
    build "$t" || { cat "$out/build-$t.log"; echo "SUMMARY reliability fuzz-$t 0 1"; failed=1; }
  done
else
  cat "$out/build-core.log"
  for t in "${targets[@]}"; do echo "SUMMARY reliability fuzz-$t 0 1"; done
  exit 1
fi

runs=()
[ -x "$out/fuzz_time" ] && runs+=("time time $seconds")
if [ -x "$out/fuzz_redact" ]; then
  if unshare -n true 2>/dev/null; then
    runs+=("redact redact $seconds AJ_FUZZ_OPEN=1 -- unshare -n --")
  else
    echo "fuzz redact: no network namespace (unshare -n): aj_store_open is not judged"
    runs+=("redact redact $seconds")
  fi
fi
if [ -x "$out/fuzz_placeholders" ]; then
  for mode in sql size control; do runs+=("placeholders-$mode placeholders $mode_seconds AJ_FUZZ_MODE=$mode"); done
fi
[ -x "$out/fuzz_tables" ] && runs+=("tables tables $seconds")
[ -x "$out/fuzz_host_row" ] && runs+=("host_row host_row $seconds")

# two at a time, reported in order
pids=()
for r in "${runs[@]}"; do
  # shellcheck disable=SC2086 # each entry is NAME TARGET SECONDS [ENV...] [-- WRAPPER...]
  fuzz $r &
  pids+=($!)
  if [ "${#pids[@]}" -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
wait
for r in "${runs[@]}"; do
  name="${r%% *}"
  cat "$out/$name.report"
  grep -q "^SUMMARY reliability fuzz-$name 1 0$" "$out/$name.report" || failed=1
done
exit "$failed"
