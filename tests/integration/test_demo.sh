#!/bin/sh
# `fvlm demo` end to end on a small corpus: every stage runs and is recorded,
# the AUC table and the HTML report come out, and a second run from scratch
# with the same seed prints the same table (reproducibility).
set -u
bin=${FVLM_BIN:?FVLM_BIN is not set}
tmp=$(mktemp -d /tmp/fvlm-demo-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAILED: $*" >&2; fails=$((fails + 1)); }

run_demo() { # dir
    "$bin" demo --out "$1" --studies 24 --epochs 2 --threads 2 --quiet >"$1.out" 2>"$1.err"
}

run_demo "$tmp/a" || fail "demo exited $? ($(tail -c 400 "$tmp/a.err"))"
grep -q "mean AUC over" "$tmp/a.out" || fail "no mean AUC line in the demo's output"
html=$(sed -n 's/^HTML report: //p' "$tmp/a.out")
[ -n "$html" ] && [ -s "$html" ] || fail "HTML report '$html' missing"
grep -q "<svg" "$html" 2>/dev/null || grep -q "roc" "$html" 2>/dev/null || fail "HTML report has no ROC"
for stage in ingest parse align train eval; do
    n=$(sqlite3 "$tmp/a/corpus.db" "SELECT count(*) FROM runs WHERE stage = '$stage' AND status = 'ok'" 2>/dev/null)
    [ "${n:-0}" -ge 1 ] || fail "no successful $stage run recorded in the database"
done
n=$(sqlite3 "$tmp/a/corpus.db" "SELECT count(*) FROM eval_results" 2>/dev/null)
[ "${n:-0}" -ge 10 ] || fail "only ${n:-0} eval_results rows"

# Same seed, fresh folder: the same table, number for number.
run_demo "$tmp/b" || fail "second demo exited $?"
# the AUC table: from its title to the mean (stage timings differ run to run)
strip() { sed -n '/AUC per task/,/mean AUC over/p' "$1"; }
strip "$tmp/a.out" >"$tmp/a.tab"
strip "$tmp/b.out" >"$tmp/b.tab"
[ -s "$tmp/a.tab" ] || fail "no AUC table in the demo's output"
cmp -s "$tmp/a.tab" "$tmp/b.tab" || fail "a second demo with the same seed prints another table: $(diff "$tmp/a.tab" "$tmp/b.tab" | head -5)"

[ "$fails" -eq 0 ] && echo "demo: all checks passed"
exit $((fails > 0))
