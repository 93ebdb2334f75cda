#!/bin/sh
# Data-parallel training under MPI (train/dpstep.h):
#   - 2 ranks x 1 thread and 1 process x 1 thread, same global batch and
#     seed, 20 steps of the tiny preset: the loss and every weight agree
#     within 1e-4 of their scale (key biases, whose gradient is zero but for
#     rounding, apart);
#   - the same 2 ranks twice give byte-identical checkpoints;
#   - a rank killed with SIGKILL ends the job with an error, and the
#     checkpoint it left resumes (mpirun -np 2 --resume) to the same bytes
#     as the run that was never stopped; a resume with another count is refused.
# A build without MPI: started as 2 ranks (the launcher's environment), fvlm
# train refuses with exit 1 and says why.
# usage: test_mpi.sh MAKE_CORPUS CKPT_DIFF mpi|nompi   (FVLM_BIN: the fvlm binary)
set -u
bin=${FVLM_BIN:?FVLM_BIN is not set}
mk=${1:?usage: test_mpi.sh MAKE_CORPUS CKPT_DIFF mpi|nompi}
diff=${2:?usage}
mode=${3:?usage}
fails=0
fail() { echo "FAILED: $*" >&2; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$mk" "$tmp/c.db" 48 9 || { echo "FAILED: make_corpus" >&2; exit 1; }
set -- --db "$tmp/c.db" --preset tiny --deterministic --quiet --json \
    --set train.steps=20 --set train.save_every=2 --set train.threads=1

if [ "$mode" = nompi ]; then
    OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 "$bin" train "$@" --out "$tmp/x.safetensors" \
        >/dev/null 2>"$tmp/err"
    rc=$?
    [ "$rc" = 1 ] && grep -q "built without MPI" "$tmp/err" ||
        fail "a build without MPI started as 2 ranks: exit $rc: $(cat "$tmp/err")"
    [ -f "$tmp/x.safetensors" ] && fail "a build without MPI started as 2 ranks trained anyway"
    [ "$fails" = 0 ] || exit 1
    echo "mpi: this build has no MPI; it refuses to run as 2 ranks"
    exit 0
fi

# CI runs as root; --oversubscribe: 2 ranks on fewer free cores
mpi="mpirun --allow-run-as-root --oversubscribe -np 2"
loss() { sed -n 's/.*"loss":\([^,]*\),.*/\1/p' "$1"; }

"$bin" train "$@" --out "$tmp/one.safetensors" >"$tmp/one.json" || fail "1 process"
$mpi "$bin" train "$@" --out "$tmp/two.safetensors" >"$tmp/two.json" 2>"$tmp/err" ||
    fail "2 ranks: $(tail -5 "$tmp/err")"
[ "$(grep -c '"model"' "$tmp/two.json")" = 1 ] || fail "2 ranks: not one result line (rank 0's)"
# key biases: compared apart, within 1e-3 absolute, a tenth of what AdamW can move
# them in 20 steps of the tiny preset (tests/train/ckpt_diff.c says why)
"$diff" "$tmp/one.safetensors" "$tmp/two.safetensors" 1e-4 1e-3 ||
    fail "2 ranks x 1 thread and 1 process x 1 thread trained different weights"
a=$(loss "$tmp/one.json")
b=$(loss "$tmp/two.json")
awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; if (d < 0) d = -d; s = a < 0 ? -a : a;
    exit !(a != "" && b != "" && d <= 1e-4 * s) }' || fail "loss: 1 process $a, 2 ranks $b"

$mpi "$bin" train "$@" --out "$tmp/again.safetensors" >/dev/null 2>&1 || fail "2 ranks again"
cmp -s "$tmp/two.safetensors" "$tmp/again.safetensors" ||
    fail "two runs of 2 ranks wrote different checkpoints"

# kill rank 1 once a checkpoint exists
$mpi "$bin" train "$@" --out "$tmp/killed.safetensors" >/dev/null 2>"$tmp/err" &
job=$!
i=0
while [ ! -f "$tmp/killed.safetensors" ] && [ $i -lt 3000 ]; do
    sleep 0.01
    i=$((i + 1))
done
victim=""
for p in $(pgrep -P "$job" 2>/dev/null) $(pgrep -f "killed.safetensors" 2>/dev/null); do
    if tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then
        victim=$p
        break
    fi
done
if [ -n "$victim" ]; then
    kill -9 "$victim"
    wait "$job"
    rc=$?
    [ "$rc" != 0 ] || fail "the job ended well (exit 0) after rank 1 was killed"
    grep -qi "rank 1\|signal 9\|killed" "$tmp/err" ||
        fail "no error naming the killed rank: $(tail -5 "$tmp/err")"
    if [ -f "$tmp/killed.safetensors" ]; then
        $mpi "$bin" train --db "$tmp/c.db" --out "$tmp/killed.safetensors" --resume \
            --deterministic --quiet >/dev/null 2>"$tmp/err" ||
            fail "resume after a killed rank: $(tail -5 "$tmp/err")"
        cmp -s "$tmp/two.safetensors" "$tmp/killed.safetensors" ||
            fail "the resumed run's checkpoint differs from the uninterrupted 2-rank run's"
    else
        fail "no checkpoint left after the kill"
    fi
else
    wait "$job"
    fail "rank 1 of the job was not found to kill (did it end first?)"
fi

# a 2-rank checkpoint resumed by one process is refused (exit 1)
"$bin" train --db "$tmp/c.db" --out "$tmp/two.safetensors" --resume --quiet \
    >/dev/null 2>"$tmp/err"
rc=$?
[ "$rc" = 1 ] && grep -q "same count" "$tmp/err" || fail "resume on 1 process: exit $rc: $(cat "$tmp/err")"

[ "$fails" = 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "mpi: all checks passed"
