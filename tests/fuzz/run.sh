#!/usr/bin/env bash
# Fuzz with libFuzzer (clang, ASan+UBSan, leak detection), each target for a bounded
# number of inputs:
#   fuzz_api        the public API on an in-memory SQLite store;
#   fuzz_documents  the reader of error and workflow documents (aj_admin_error_parse),
#                   seeded with tests/fuzz/seeds/documents.
# Prints "SUMMARY fuzz <target> 1 0" per target when no input crashed, leaked or
# misbehaved; exits non-zero otherwise. RUNS=N overrides the count of inputs per target.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
runs="${RUNS:-30000}"
out="$root/build/fuzz"
failed=0
# the core's warning flags, as in every other build of it (core/warning-flags.txt)
warnings="$(grep -v '^#' core/warning-flags.txt)"

# fuzz TARGET PART SEEDS...: build tests/fuzz/TARGET.c with the core and run it.
fuzz() {
  local target="$1" part="$2"
  shift 2
  mkdir -p "$out/corpus-$target"
  # shellcheck disable=SC2086 # one flag per word
  if ! clang -g -O1 -std=c11 -D_GNU_SOURCE $warnings -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=all -Icore/include -Icore/src $(pkg-config --cflags libpq) \
        core/src/*.c "tests/fuzz/$target.c" -lsqlite3 -lpq -o "$out/$target"; then
    echo "SUMMARY fuzz $part 0 1"
    failed=1
    return
  fi
  if (cd "$out" && "./$target" -runs="$runs" -max_total_time=120 -timeout=10 -seed=1 \
        -print_final_stats=1 "corpus-$target" "$@" 2>&1 | tail -n 12); then
    echo "fuzz: $target: $runs inputs, no crash, leak or undefined behaviour"
    echo "SUMMARY fuzz $part 1 0"
  else
    echo "fuzz: $target: an input failed; the reproducer is in $out (crash-*, leak-*, timeout-*)"
    echo "SUMMARY fuzz $part 0 1"
    failed=1
  fi
}

fuzz fuzz_api sqlite
fuzz fuzz_documents documents -dict="$root/tests/fuzz/documents.dict" "$root/tests/fuzz/seeds/documents"
exit "$failed"
