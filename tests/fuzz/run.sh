#!/usr/bin/env bash
# Fuzz the public API with libFuzzer (clang, ASan+UBSan, leak detection) for a bounded
# number of inputs on an in-memory SQLite store. Prints "SUMMARY fuzz sqlite 1 0" when no
# input crashed, leaked or misbehaved; exits non-zero otherwise. RUNS=N overrides the count.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
runs="${RUNS:-30000}"
out="$root/build/fuzz"
mkdir -p "$out/corpus"
# the core's warning flags, as in every other build of it (core/warning-flags.txt)
warnings="$(grep -v '^#' core/warning-flags.txt)"
# shellcheck disable=SC2086 # one flag per word
if ! clang -g -O1 -std=c11 -D_GNU_SOURCE $warnings -fsanitize=fuzzer,address,undefined \
      -fno-sanitize-recover=all -Icore/include $(pkg-config --cflags libpq) core/src/*.c \
      tests/fuzz/fuzz_api.c -lsqlite3 -lpq -o "$out/fuzz_api"; then
  echo "SUMMARY fuzz build 0 1"
  exit 1
fi
if (cd "$out" && ./fuzz_api -runs="$runs" -max_total_time=120 -timeout=10 -seed=1 \
      -print_final_stats=1 corpus 2>&1 | tail -n 12); then
  echo "fuzz: $runs inputs, no crash, leak or undefined behaviour"
  echo "SUMMARY fuzz sqlite 1 0"
else
  echo "fuzz: an input failed; the reproducer is in $out (crash-*, leak-*, timeout-*)"
  echo "SUMMARY fuzz sqlite 0 1"
  exit 1
fi
