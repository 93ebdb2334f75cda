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
# the benchmark's calibration: synth's oracle file, and the table's oracle and
# trivial columns and the mean over the tasks the oracle sees
[ -s "$tmp/a/synth/truth/oracle.csv" ] || fail "synth wrote no truth/oracle.csv"
grep -q "AUC \[95% CI\] *oracle trivial" "$tmp/a.out" || fail "no oracle and trivial columns"
grep -q "^over the [0-9]* tasks the oracle sees at the model's input: [0-9.]*" "$tmp/a.out" ||
    fail "no mean over the tasks the oracle sees"

# Every run reads back: `fvlm runs` lists each stage, `show` ties the train
# run to its model and evaluation, `diff` names what changed.
db=$tmp/a/corpus.db
"$bin" runs --db "$db" >"$tmp/runs.out" 2>"$tmp/runs.err" || fail "fvlm runs exited $?"
for stage in ingest parse align train eval; do
    grep -q " $stage " "$tmp/runs.out" || fail "fvlm runs does not list the $stage run"
done
"$bin" runs --db "$db" --json | /usr/bin/python3 -c '
import json, sys
runs = json.load(sys.stdin)
assert len(runs) >= 5, runs
assert all(r["revision"] and r["status"] == "ok" for r in runs), runs' || fail "fvlm runs --json"
train=$(sqlite3 "$db" "SELECT max(id) FROM runs WHERE stage = 'train'")
"$bin" runs --db "$db" show "$train" >"$tmp/show.out" || fail "fvlm runs show exited $?"
grep -q "^  train.lr " "$tmp/show.out" || fail "runs show lacks the config"
grep -q "^  model [0-9]*: " "$tmp/show.out" || fail "runs show lacks the model the run wrote"
grep -q "mean AUC [0-9.]* over" "$tmp/show.out" || fail "runs show lacks the evaluation of its model"
"$bin" train --db "$db" --preset small --seed 1 --threads 2 --epochs 1 --quiet \
    --set train.lr=0.001 --out "$tmp/a/other.safetensors" >/dev/null 2>&1 || fail "second train"
other=$(sqlite3 "$db" "SELECT max(id) FROM runs WHERE stage = 'train'")
"$bin" runs --db "$db" diff "$train" "$other" >"$tmp/diff.out" || fail "fvlm runs diff exited $?"
grep -q "train.lr .* -> 0.001" "$tmp/diff.out" || fail "runs diff misses train.lr: $(cat "$tmp/diff.out")"
grep -q "train.epochs *2 -> 1" "$tmp/diff.out" || fail "runs diff misses train.epochs"
grep -q "^  train.seed" "$tmp/diff.out" && fail "runs diff lists an unchanged key"
"$bin" runs --db "$db" --stage no-such-stage >/dev/null 2>&1
[ $? = 1 ] || fail "runs with a filter that matches nothing does not exit 1"
"$bin" runs --db "$db" show 99999 >/dev/null 2>&1
[ $? = 1 ] || fail "runs show of a missing run does not exit 1"
"$bin" runs --db "$db" show x >/dev/null 2>&1
[ $? = 2 ] || fail "runs show x is not a usage error"

# The supervised baseline trains on the parsed labels and `fvlm eval` scores
# it with its own heads.
"$bin" train --db "$tmp/a/corpus.db" --preset small --loss supervised --seed 1 --threads 2 \
    --epochs 2 --quiet --out "$tmp/a/sup.safetensors" >/dev/null 2>"$tmp/sup.err" ||
    fail "train --loss supervised exited $? ($(tail -c 300 "$tmp/sup.err"))"
FVLM_DEID_KEY='fvlm-demo-synthetic-seed-1' "$bin" eval --db "$tmp/a/corpus.db" \
    --model "$tmp/a/sup.safetensors" --labels "$tmp/a/synth/truth/labels.csv" --out "$tmp/a/sup-eval" \
    --quiet >"$tmp/sup.out" 2>>"$tmp/sup.err" || fail "eval of the supervised model exited $?"
n=$(sqlite3 "$tmp/a/corpus.db" "SELECT count(*) FROM eval_results WHERE method = 'supervised' AND auc IS NOT NULL" 2>/dev/null)
[ "${n:-0}" -ge 10 ] || fail "only ${n:-0} scored eval_results rows of the supervised model"

# Same seed, fresh folder: the same table, number for number.
run_demo "$tmp/b" || fail "second demo exited $?"
# the AUC table: from its title to the mean (stage timings differ run to run)
strip() { sed -n '/AUC per task/,/tasks marked trivial/p' "$1"; }
strip "$tmp/a.out" >"$tmp/a.tab"
strip "$tmp/b.out" >"$tmp/b.tab"
[ -s "$tmp/a.tab" ] || fail "no AUC table in the demo's output"
cmp -s "$tmp/a.tab" "$tmp/b.tab" || fail "a second demo with the same seed prints another table: $(diff "$tmp/a.tab" "$tmp/b.tab" | head -5)"

# ... and every stage started from the same corpus: equal fingerprints.
for stage in parse align train eval; do
    fa=$(sqlite3 "$tmp/a/corpus.db" "SELECT corpus_fingerprint FROM runs WHERE stage = '$stage' ORDER BY id LIMIT 1")
    fb=$(sqlite3 "$tmp/b/corpus.db" "SELECT corpus_fingerprint FROM runs WHERE stage = '$stage' ORDER BY id LIMIT 1")
    [ -n "$fa" ] && [ "$fa" = "$fb" ] || fail "$stage: corpus fingerprints differ between two demos: $fa $fb"
done

[ "$fails" -eq 0 ] && echo "demo: all checks passed"
exit $((fails > 0))
