#!/bin/sh
# fvlm synth end to end: the same options give byte-identical files (whatever
# the thread count), a smaller run is a prefix of a larger one, and the
# command refuses bad options.
set -u
bin=${FVLM_BIN:?FVLM_BIN is not set}
fails=0
fail() { echo "FAILED: $*" >&2; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" synth --out "$tmp/a" --studies 8 --seed 3 --quiet >/dev/null || fail "synth run a"
"$bin" synth --out "$tmp/b" --studies 8 --seed 3 --threads 2 --quiet >/dev/null || fail "synth run b"
(cd "$tmp/a" && find . -type f | sort | xargs sha256sum) > "$tmp/a.sum"
(cd "$tmp/b" && find . -type f | sort | xargs sha256sum) > "$tmp/b.sum"
[ -s "$tmp/a.sum" ] || fail "no files written"
cmp -s "$tmp/a.sum" "$tmp/b.sum" || fail "two runs with seed 3 differ: $(diff "$tmp/a.sum" "$tmp/b.sum" | head -5)"
grep -q "truth/studies.jsonl" "$tmp/a.sum" || fail "no truth/studies.jsonl"
grep -q "truth/labels.csv" "$tmp/a.sum" || fail "no truth/labels.csv"
n=$(wc -l < "$tmp/a/truth/studies.jsonl")
[ "$n" = 8 ] || fail "studies.jsonl has $n lines, expected 8"

# a run of 5 studies writes the same study files as the first 5 of 8
"$bin" synth --out "$tmp/c" --studies 5 --seed 3 --quiet >/dev/null || fail "synth run c"
for p in $(sed -n 's/.*"path":"\([^"]*\)".*/\1/p' "$tmp/c/truth/studies.jsonl"); do
    cmp -s "$tmp/a/$p" "$tmp/c/$p" || fail "$p differs between 5 and 8 studies"
done
# a different seed gives a different corpus
"$bin" synth --out "$tmp/d" --studies 2 --seed 4 --size tiny --quiet >/dev/null || fail "synth run d"
cmp -s "$tmp/d/truth/labels.csv" "$tmp/c/truth/labels.csv" && fail "seeds 3 and 4 gave the same truth"

expect2() { "$@" >/dev/null 2>&1; rc=$?; [ $rc = 2 ] || fail "exit $rc, expected 2: $*"; }
expect2 "$bin" synth --studies 2
expect2 "$bin" synth --out "$tmp/e" --studies 0
expect2 "$bin" synth --out "$tmp/e" --layout pacs
expect2 "$bin" synth --out "$tmp/e" --size huge
expect2 "$bin" synth --out "$tmp/e" --test-fraction 1.5
"$bin" synth --out "$tmp/a" --studies 1 --quiet >/dev/null 2>&1 && fail "overwrote a corpus without --force"
"$bin" synth --out "$tmp/a" --studies 1 --size tiny --force --json > "$tmp/j" || fail "--force"
grep -q '"studies":1' "$tmp/j" || fail "--json summary: $(cat "$tmp/j")"
[ "$fails" = 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "synth corpus: all checks passed"
