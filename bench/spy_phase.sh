#!/usr/bin/env bash
# Profile the timed phase of an API scenario: run `visitmail bench ARGS`, and when its
# progress output shows PATTERN, record the `visitmail serve` it started with py-spy for
# SECONDS seconds (speedscope JSON). Then: python -m bench.profile_summary OUT.json
#
#   bench/spy_phase.sh out/bulk "run 1/3" 25 --scenario bulk --databases sqlite --repeat 3
#
# Needs py-spy (pip install py-spy) and the right to ptrace (root, or ptrace_scope 0).
set -euo pipefail
out=$1 pattern=$2 seconds=$3
shift 3
cd "$(dirname "$0")/.."
mkdir -p "$(dirname "$out")"
.venv/bin/visitmail bench "$@" >"$out.txt" 2>&1 &
bench=$!
while kill -0 "$bench" 2>/dev/null; do
  if grep -q -- "$pattern" "$out.txt"; then
    pid=$(pgrep -f "bin/visitmail serve --host 127.0.0.1" | tail -1)
    .venv/bin/py-spy record --pid "$pid" -r 100 -d "$seconds" -f speedscope -o "$out.json" \
      >"$out.spy.log" 2>&1
    break
  fi
  sleep 0.2
done
wait "$bench"
