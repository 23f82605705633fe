#!/usr/bin/env bash
# Run every benchmark in turn (peers side by side) and keep the logs under benchmarks/_data/logs/.
# Usage: bash benchmarks/run_all.sh   (from the project root; INTREPID_EXTERNAL_DATA defaults to ../shared/data)
# Peers run from their own virtual environments where they need one (see each script's docstring):
# /work/venvs/dicompyler (dicompyler-core + pydicom 2), /work/venvs/plastimatch, /work/venvs/pyradplan.
set -uo pipefail
cd "$(dirname "$0")/.."
export INTREPID_EXTERNAL_DATA="${INTREPID_EXTERNAL_DATA:-$(cd ../shared/data 2>/dev/null && pwd)}"
logs=benchmarks/_data/logs
mkdir -p "$logs"
for bench in ct_read resample structures dvh dvh_analytic gamma raytrace simulate pairs learn predict aperture compensator; do
    script="benchmarks/bench_${bench}.py"
    [ -f "$script" ] || continue
    echo "== $bench (load: $(cut -d' ' -f1-3 /proc/loadavg))"
    start=$(date +%s)
    python3 "$script" > "$logs/$bench.md" 2> "$logs/$bench.err"
    echo "   exit $?, $(( $(date +%s) - start )) s -> $logs/$bench.md"
done
