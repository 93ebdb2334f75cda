#!/bin/sh
# run.sh EXE SEEDS CORPUS CRASHES SECONDS [fresh]: one libFuzzer harness for
# a fixed time. New inputs go to CORPUS (never into the committed SEEDS;
# emptied first with "fresh", so a CI run costs the same every time), a
# crash to CRASHES/; libFuzzer's output (its final stats: execs, cov, ft) is
# kept in CRASHES/../logs/. Exit 0 only when nothing was found.
set -eu
exe=$1 seeds=$2 corpus=$3 crashes=$4 secs=$5
[ "${6:-}" = fresh ] && rm -rf "$corpus"
name=$(basename "$exe")
mkdir -p "$corpus" "$crashes" "$(dirname "$crashes")/../logs"
log="$(dirname "$crashes")/../logs/$name.log"
set +e
"$exe" "$corpus" "$seeds" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$crashes/" >"$log" 2>&1
rc=$?
set -e
# libFuzzer prints its stats at the end; show them and any sanitizer report.
grep -a -E 'ERROR|SUMMARY|Test unit written|stat::|INITED|DONE' "$log" | tail -n 20
if [ $rc -ne 0 ]; then
    echo "$name: exit $rc; full log: $log" >&2
    tail -n 60 "$log" >&2
fi
exit $rc
