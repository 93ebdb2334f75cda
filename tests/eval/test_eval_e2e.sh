#!/bin/sh
# fvlm eval and fvlm probe end to end with the real binary: a fixture corpus
# (tests/train/make_corpus), keyed and split like an ingested one
# (eval_e2e_setup), a `tiny` model trained by fvlm train, then evaluations
# with the truth file, with the silver labels, and the probe; their files,
# rows, runs, determinism and usage errors.
set -u
bin=${FVLM_BIN:?FVLM_BIN is not set}
setup=${EVAL_E2E_SETUP:?EVAL_E2E_SETUP is not set}
mk=${MAKE_CORPUS:?MAKE_CORPUS is not set}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAILED: $*" >&2; fails=$((fails + 1)); }
key=e2e-test-key-0123
db=$tmp/c.db

# SQL through whichever client this machine has.
q() {
    if command -v sqlite3 >/dev/null; then
        sqlite3 "$db" "$1"
    elif [ -x /usr/bin/python3 ]; then
        /usr/bin/python3 -c 'import sqlite3,sys
for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print("|".join(map(str, r)))' "$db" "$1"
    else
        echo "SKIP"
    fi
}

"$mk" "$db" 60 11 --chinese >/dev/null || { echo "FAILED: make_corpus" >&2; exit 1; }
"$setup" "$db" "$key" "$tmp/truth.csv" >/dev/null || { echo "FAILED: eval_e2e_setup" >&2; exit 1; }
"$bin" train --db "$db" --preset tiny --out "$tmp/m.safetensors" --quiet >"$tmp/train.out" 2>&1 \
    || { echo "FAILED: fvlm train: $(tail -3 "$tmp/train.out")" >&2; exit 1; }

# Zero-shot against the truth file.
FVLM_DEID_KEY=$key "$bin" eval --db "$db" --model "$tmp/m.safetensors" --labels "$tmp/truth.csv" \
    --out "$tmp/out" --bootstrap 200 --seed 5 --quiet >"$tmp/eval.out" 2>"$tmp/eval.err"
rc=$?
[ $rc = 0 ] || fail "fvlm eval --labels: exit $rc ($(head -c 300 "$tmp/eval.err"))"
for f in zero-shot.csv zero-shot.md zero-shot-roc.svg zero-shot.html; do
    [ -s "$tmp/out/$f" ] || fail "fvlm eval wrote no $f"
done
grep -q "report: $tmp/out/zero-shot.html" "$tmp/eval.out" || fail "eval does not print the report path"
grep -q "mean AUC, all tasks" "$tmp/eval.out" || fail "eval does not print the macro average"
grep -q "^lung_opacity " "$tmp/eval.out" || fail "eval does not list lung_opacity: $(cat "$tmp/eval.out")"
run=$(q "SELECT max(id) FROM runs WHERE stage = 'eval'")
if [ "$run" != SKIP ]; then
    [ "$(q "SELECT status FROM runs WHERE id = $run")" = ok ] || fail "eval run $run is not ok"
    tasks=$(($(wc -l <"$tmp/out/zero-shot.csv") - 1))
    [ "$(q "SELECT count(*) FROM eval_results WHERE run_id = $run AND method = 'zero-shot' \
           AND label_source = 'truth:truth.csv' AND split = 'test'")" = "$tasks" ] \
        || fail "eval_results rows of run $run do not match the $tasks CSV rows"
    [ "$(q "SELECT count(*) FROM eval_results WHERE run_id = $run AND model_id = \
           (SELECT max(id) FROM models)")" = "$tasks" ] || fail "eval rows are not tied to the model"
    [ "$(q "SELECT count(*) FROM eval_results WHERE run_id = $run AND auc IS NOT NULL")" -ge 3 ] \
        || fail "fewer than 3 tasks scored"
fi

# The same evaluation again: the same numbers.
FVLM_DEID_KEY=$key "$bin" eval --db "$db" --model "$tmp/m.safetensors" --labels "$tmp/truth.csv" \
    --out "$tmp/out2" --bootstrap 200 --seed 5 --quiet >/dev/null 2>&1 || fail "second eval"
cmp -s "$tmp/out/zero-shot.csv" "$tmp/out2/zero-shot.csv" || fail "a second eval gave other numbers"

# Silver labels, CT-CLIP prompts, JSON.
"$bin" eval --db "$db" --model "$tmp/m.safetensors" --out "$tmp/silver" --style ctclip \
    --bootstrap 100 --json --quiet >"$tmp/silver.json" 2>"$tmp/silver.err" \
    || fail "fvlm eval (silver): $(head -c 300 "$tmp/silver.err")"
grep -q '"silver": true' "$tmp/silver.json" || fail "silver labels are not marked in --json"
grep -q '"style": "ctclip"' "$tmp/silver.json" || fail "--style ctclip not applied"
grep -q 'Silver labels' "$tmp/silver/zero-shot.html" || fail "HTML does not mark silver labels"
grep -q 'Evaluations of this corpus' "$tmp/silver/zero-shot.html" \
    || fail "HTML does not list the earlier evaluations"
if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 - "$tmp/silver.json" <<'EOF' || fail "--json output"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["html"].endswith("zero-shot.html"), d["html"]
assert sum(t["n_uncertain"] for t in d["tasks"]) == 1, "the uncertain label is not counted"
assert d["counts"]["macro_all"]["n_scored"] >= 3, d["counts"]
EOF
    for f in "$tmp/out/zero-shot-roc.svg" "$tmp/out/zero-shot.html"; do
        /usr/bin/python3 -c 'import sys, xml.etree.ElementTree as ET; ET.parse(sys.argv[1])' "$f" \
            || fail "$f is not well-formed"
    done
fi

# The probe.
FVLM_DEID_KEY=$key "$bin" probe --db "$db" --model "$tmp/m.safetensors" --labels "$tmp/truth.csv" \
    --out "$tmp/out" --bootstrap 100 --quiet >"$tmp/probe.out" 2>"$tmp/probe.err" \
    || fail "fvlm probe: $(head -c 300 "$tmp/probe.err")"
[ -s "$tmp/out/probe.html" ] || fail "probe wrote no HTML"
grep -q "^probe AUC" "$tmp/probe.out" || fail "probe output: $(head -3 "$tmp/probe.out")"
if [ "$run" != SKIP ]; then
    [ "$(q "SELECT count(*) FROM eval_results WHERE method = 'probe' AND auc IS NOT NULL")" -ge 3 ] \
        || fail "probe rows"
    [ "$(q "SELECT count(*) FROM runs WHERE stage = 'probe' AND status = 'ok'")" = 1 ] \
        || fail "probe run"
fi

# Usage and failures.
expect() { # rc message-pattern command...
    want=$1; pat=$2; shift 2
    "$@" >"$tmp/x.out" 2>"$tmp/x.err"
    got=$?
    [ "$got" = "$want" ] || fail "$*: exit $got, expected $want"
    grep -q -- "$pat" "$tmp/x.err" || fail "$*: message lacks '$pat': $(head -c 300 "$tmp/x.err")"
}
expect 1 "$tmp/none.safetensors" "$bin" eval --db "$db" --model "$tmp/none.safetensors" --out "$tmp/o"
expect 2 "deid" env -u FVLM_DEID_KEY "$bin" eval --db "$db" --model "$tmp/m.safetensors" \
    --labels "$tmp/truth.csv" --out "$tmp/o"
expect 2 "style" "$bin" eval --db "$db" --model "$tmp/m.safetensors" --out "$tmp/o" --style x
expect 2 "--out" "$bin" eval --db "$db" --model "$tmp/m.safetensors"
expect 2 "split" "$bin" probe --db "$db" --model "$tmp/m.safetensors" --out "$tmp/o" --split x
expect 2 "--C" "$bin" probe --db "$db" --model "$tmp/m.safetensors" --out "$tmp/o" --C -1
expect 1 "nothere.db" "$bin" eval --db "$tmp/nothere.db" --model "$tmp/m.safetensors" --out "$tmp/o"
# The corpus took the key of the first eval with --labels: another key is
# refused (it used to score 0 of 60 tasks and exit 0).
FVLM_DEID_KEY=another-key-7890 expect 1 "built with another de-identification key" \
    "$bin" eval --db "$db" --model "$tmp/m.safetensors" --labels "$tmp/truth.csv" --out "$tmp/o"
# A labels file whose ids name no study scores nothing: exit 1 saying why.
head -1 "$tmp/truth.csv" > "$tmp/strangers.csv"
tail -n +2 "$tmp/truth.csv" | sed 's/^[^,]*,/stranger-study,/' | head -5 >> "$tmp/strangers.csv"
FVLM_DEID_KEY=$key expect 1 "no task scored: no row of" \
    "$bin" eval --db "$db" --model "$tmp/m.safetensors" --labels "$tmp/strangers.csv" --out "$tmp/o"

[ "$fails" = 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "eval e2e: all checks passed"
