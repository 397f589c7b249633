#!/usr/bin/env bash
# The share of the static→oracle gap `tuned` closes over several seeds: median and minimum
# for AHT and the composite. A long run (about 20 s a seed at 1 000 agents), not a test.
#
#   scripts/simulate-seeds.sh [SEEDS] [simulate options…]
#   scripts/simulate-seeds.sh 10                      # seeds 1..10, the default twin
#   scripts/simulate-seeds.sh 10 --load 0.85          # a lower load
#   scripts/simulate-seeds.sh 10 --handle-cv 0.9      # noisier handle times
#
# Needs a release build (`cargo build --release`) and jq.
set -euo pipefail
seeds=${1:-10}
shift || true
bin=${SKILL_TUNER_BIN:-$(dirname "$0")/../target/release/skill-tuner}
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for seed in $(seq 1 "$seeds"); do
    line=$("$bin" simulate --seed "$seed" --json "$@" 2>/dev/null | tail -n 1)
    echo "$line" | jq -r --arg seed "$seed" '
        def pct: if . == null then "n/a" else (. * 100 | round | tostring) + "%" end;
        "seed \($seed): AHT \(.gap_closed.aht | pct), composite \(.gap_closed.composite | pct), transfer \(.gap_closed.transfer_rate | pct), quality \(.gap_closed.quality | pct); transfer no worse \(.constraints.transfer_rate_no_worse), quality no worse \(.constraints.quality_no_worse), Gini within \(.constraints.gini_within)"'
    echo "$line" | jq -c '[.gap_closed.aht, .gap_closed.composite]' >> "$rows"
done
jq -rs '
    def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def pct: if . == null then "n/a" else (. * 100 | round | tostring) + "%" end;
    (map(.[0]) | map(select(. != null))) as $aht | (map(.[1]) | map(select(. != null))) as $comp |
    "over \(length) seeds: AHT median \($aht | median | pct), minimum \($aht | min | pct); composite median \($comp | median | pct), minimum \($comp | min | pct)"' "$rows"
