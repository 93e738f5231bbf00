#!/usr/bin/env bash
# The shared library exports exactly the functions the public header declares (AJ_EXTERN)
# and nothing else: the core is built with -fvisibility=hidden.
#   tests/c/check_exports.sh LIBRARY.so HEADER.h
# Prints "SUMMARY c exports 1 0" or "... 0 1".
set -uo pipefail
lib="$1"
header="$2"
suite="${AJ_TEST_SUITE:-c}"
declared="$(grep -oE '^AJ_EXTERN[^(]*\(' "$header" | grep -oE '[a-z_0-9]+ *\($' | tr -d ' (' | sort -u)"
exported="$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWw]$/ {print $3}' | sort -u)"
missing="$(comm -23 <(echo "$declared") <(echo "$exported"))"
extra="$(comm -13 <(echo "$declared") <(echo "$exported"))"
if [ -z "$missing" ] && [ -z "$extra" ] && [ -n "$declared" ]; then
  echo "exports: $(echo "$exported" | wc -l) functions, exactly the public API"
  echo "SUMMARY $suite exports 1 0"
  exit 0
fi
[ -n "$missing" ] && echo "declared in the header but not exported:" && echo "$missing" | sed 's/^/  /'
[ -n "$extra" ] && echo "exported but not in the public header:" && echo "$extra" | sed 's/^/  /'
echo "SUMMARY $suite exports 0 1"
exit 1
