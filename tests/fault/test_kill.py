#!/usr/bin/python3
"""kill -9 at random points of a stage, then the same command again: the
database must equal an uninterrupted run's (every table but runs, without
run ids and times), pass PRAGMA integrity_check, and a checkpoint must be
the uninterrupted run's byte for byte (train is --deterministic).

    test_kill.py STAGE [N]    (parse, align, train or eval; N kills, default 50)

The delay before each kill is drawn uniformly from [0, 1.2 x the measured
duration of an uninterrupted run], from an RNG seeded by the stage name and
FVLM_FAULT_SEED (printed on failure), so a failure can be replayed. Kills run
two at a time (the machines CI uses have two cores)."""
import concurrent.futures
import filecmp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as F  # noqa: E402


def one(cache, stage, want, i, delay, work):
    d = os.path.join(work, "k%d" % i)
    F.copy_state(F.state(cache, stage, after=False), d)
    cmd = F.stage_cmd(stage)
    p = subprocess.Popen(cmd, cwd=d, env=F.ENV, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(delay)
    p.kill()  # SIGKILL; a run that already ended is left as it is
    p.wait()
    rc, out, err = F.run(cmd, d)
    why = None
    if rc != 0:
        why = "the re-run exit %d: %s" % (rc, err.strip()[-300:])
    else:
        ok, r = F.integrity(os.path.join(d, "c.db"))
        if not ok:
            why = "integrity_check: %r" % (r[:3],)
        else:
            why = F.diff(want, F.dump(os.path.join(d, "c.db")))
        ref = F.state(cache, stage, after=True)
        if not why and stage == "train" and not filecmp.cmp(
                os.path.join(ref, "m.safetensors"), os.path.join(d, "m.safetensors"), shallow=False):
            why = "the checkpoint differs from an uninterrupted run's"
        if not why and F.tensor_names(ref) != F.tensor_names(d):
            why = "tensor files %s, expected %s" % (F.tensor_names(d), F.tensor_names(ref))
    killed = p.returncode == -9
    if not why:
        shutil.rmtree(d)
    return i, delay, killed, why


def main():
    stage = sys.argv[1] if len(sys.argv) > 1 else ""
    if stage not in ("parse", "align", "train", "eval"):
        print("usage: test_kill.py parse|align|train|eval [N]", file=sys.stderr)
        return 2
    n = int(sys.argv[2]) if len(sys.argv) > 2 else int(os.environ.get("FVLM_FAULT_KILLS", "50"))
    cache, times = F.base()
    want = F.dump(os.path.join(F.state(cache, stage, after=True), "c.db"))
    seed = os.environ.get("FVLM_FAULT_SEED", "1")
    rng = random.Random("%s:%s" % (stage, seed))
    span = 1.2 * times[stage]
    delays = [rng.uniform(0, span) for _ in range(n)]
    work = tempfile.mkdtemp(prefix="fvlm-kill-%s-" % stage)
    fails, killed = [], 0
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        for i, delay, k, why in ex.map(lambda a: one(cache, stage, want, a[0], a[1], work),
                                       enumerate(delays)):
            killed += k
            if why:
                fails.append("kill %d after %.3f s (FVLM_FAULT_SEED=%s): %s" % (i, delay, seed, why))
    for f in fails[:10]:
        print("FAILED: %s: %s" % (stage, f), file=sys.stderr)
    print("%s: %d kills (%d landed while it ran; uninterrupted run %.2f s), %d re-runs "
          "differ, %.1f s" % (stage, n, killed, times[stage], len(fails), time.monotonic() - t0))
    if not fails:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print("kept the failing states under %s" % work, file=sys.stderr)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
