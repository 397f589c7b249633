#!/usr/bin/env bash
# Runs every test binary (tests/it, tests/log_secrets.rs and the crates' unit tests) with the
# wall clock moved to each date of the calendar matrix (libfaketime; the monotonic clock stays
# real so timeouts behave), in two time zones, and prints one line per date and zone with the
# passed/failed counts and the names of the tests that failed.
#
#   bash tests/faketime-matrix.sh                 # the whole matrix
#   bash tests/faketime-matrix.sh '2026-12-31 12:00:00'   # one date
#
# Needs `faketime` (Debian: apt-get install faketime). Not part of `cargo test --workspace`:
# it runs the whole suite twelve times.
set -uo pipefail
cd "$(dirname "$0")/.."
command -v faketime >/dev/null || { echo "faketime is not installed (apt-get install faketime)" >&2; exit 2; }

if [ $# -gt 0 ]; then dates=("$@"); else
  dates=('2026-11-25 12:00:00' '2026-12-31 12:00:00' '2027-06-15 12:00:00' '2028-02-29 12:00:00'
         '2027-03-28 01:30:00' '2027-10-31 01:30:00')
fi
zones=(Europe/Berlin America/New_York)

mapfile -t bins < <(cargo test --workspace --no-run --message-format=json 2>/dev/null | python3 -c '
import sys, json
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])
')
[ ${#bins[@]} -gt 0 ] || { echo "no test binaries were built" >&2; exit 2; }

status=0
for d in "${dates[@]}"; do
  for tz in "${zones[@]}"; do
    passed=0 failed=0 failures=()
    for b in "${bins[@]}"; do
      # An offset from now, so the date is read as UTC whatever TZ says.
      offset=$(( $(date -u -d "$d" +%s) - $(date -u +%s) ))
      out=$(TZ="$tz" FAKETIME_DONT_FAKE_MONOTONIC=1 faketime -f "$(printf "%+d" "$offset")s" "$b" --test-threads=2 2>&1)
      line=$(grep -E '^test result:' <<<"$out" | tail -1)
      p=$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$line"); f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
      [ -n "$line" ] || { f=1; p=0; }
      passed=$((passed + p)); failed=$((failed + f))
      if [ "$f" != 0 ]; then failures+=("$(basename "$b"): $(grep -E '^    [a-z0-9_:]+$' <<<"$out" | tr -d ' ' | paste -sd, -)"); fi
    done
    echo "$d UTC  TZ=$tz  $passed passed, $failed failed"
    for f in "${failures[@]}"; do echo "    $f"; done
    [ "$failed" = 0 ] || status=1
  done
done
exit $status
