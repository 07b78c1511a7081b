#!/usr/bin/env bash
# The interruption tests, round after round, under CPU load and with SIGINT ignored, as a background job started by
# nohup ... & (or many CI runners) has it: how issue 27's "20 of 20" is measured. Writes only into its log folder.
#   usage: bash tests/interruption_rounds.sh [ROUNDS=20] [BUSY_LOOPS=3] [LOG_FOLDER=a new temporary folder]
# Each round's pytest runs in a test folder of its own; after it, any process still running from that folder is counted.
set -uo pipefail
rounds=${1:-20} loops=${2:-3} logs=${3:-$(mktemp -d)}
cd "$(dirname "$0")/.."
mkdir -p "$logs"; tmp=$(mktemp -d)
trap '' INT   # SIGINT ignored from here on, and so in every pytest below (the shell's convention for background jobs)
export MPLBACKEND=Agg OMP_NUM_THREADS=1
echo "commit $(git rev-parse HEAD); SIGINT in pytest: $(python -c 'import signal; print("ignored" if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else "NOT ignored")'); $loops busy loops; logs in $logs"
load=(); for _ in $(seq "$loops"); do python3 -c 'while True: pass' & load+=($!); done
trap 'kill "${load[@]}" 2>/dev/null; rm -rf "$tmp"' EXIT
failed=0
for round in $(seq "$rounds"); do
  t0=$(date +%s)
  python -m pytest -q -p no:cacheprovider --basetemp="$tmp/round_$round" -m interruption tests/test_cli.py tests/test_distributed.py \
    > "$logs/round_$round.log" 2>&1; rc=$?
  sleep 1; left=$(pgrep -f "$tmp/round_$round" | wc -l)
  [ "$rc" -eq 0 ] && [ "$left" -eq 0 ] || failed=$((failed + 1))
  echo "round $round rc=$rc $(tail -1 "$logs/round_$round.log") $(( $(date +%s) - t0 )) s; processes left behind: $left"
done
echo "$((rounds - failed)) of $rounds rounds passed with no process left behind"
[ "$failed" -eq 0 ]
