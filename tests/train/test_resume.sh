#!/bin/sh
# fvlm train --deterministic: a run killed with SIGKILL and resumed with
# --resume ends with the same checkpoint, byte for byte, as a run that was
# never stopped; a resume that would change the result is refused.
# usage: test_resume.sh MAKE_CORPUS   (FVLM_BIN: the fvlm binary)
set -u
bin=${FVLM_BIN:?FVLM_BIN is not set}
mk=${1:?usage: test_resume.sh MAKE_CORPUS}
fails=0
fail() { echo "FAILED: $*" >&2; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$mk" "$tmp/c.db" 48 9 || { echo "FAILED: make_corpus" >&2; exit 1; }
set -- --db "$tmp/c.db" --preset tiny --deterministic --quiet \
    --set train.epochs=8 --set train.save_every=2 --set train.threads=1

"$bin" train "$@" --out "$tmp/straight.safetensors" >/dev/null || fail "uninterrupted run"

"$bin" train "$@" --out "$tmp/killed.safetensors" >/dev/null 2>"$tmp/err" &
pid=$!
i=0
while [ ! -f "$tmp/killed.safetensors" ] && [ $i -lt 3000 ]; do
    sleep 0.01
    i=$((i + 1))
done
kill -9 "$pid" 2>/dev/null
wait "$pid"
rc=$?
[ "$rc" = 137 ] || fail "the run ended (exit $rc) before it could be killed: $(cat "$tmp/err")"
[ -f "$tmp/killed.safetensors" ] || fail "no checkpoint before the kill"

"$bin" train --db "$tmp/c.db" --out "$tmp/killed.safetensors" --resume --deterministic \
    --quiet >/dev/null || fail "resume after kill -9"
cmp -s "$tmp/straight.safetensors" "$tmp/killed.safetensors" ||
    fail "the resumed run's checkpoint differs from the uninterrupted run's"

# a deterministic resume under another thread count is refused (exit 1)
"$bin" train --db "$tmp/c.db" --out "$tmp/killed.safetensors" --resume --deterministic \
    --threads 2 --quiet >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" = 1 ] && grep -q "threads" "$tmp/err" || fail "resume with other threads: exit $rc: $(cat "$tmp/err")"
# nothing to resume
"$bin" train --db "$tmp/c.db" --out "$tmp/none.safetensors" --resume --quiet 2>"$tmp/err"
rc=$?
[ "$rc" = 1 ] && grep -q "none.safetensors" "$tmp/err" || fail "resume without a checkpoint: exit $rc"

[ "$fails" = 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "resume: all checks passed"
