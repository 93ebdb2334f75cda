#!/usr/bin/python3
"""SQLite I/O errors and a full disk at every stage.

    test_io.py vfs STAGE     the fault VFS (lib/faultvfs): the N-th SQLite
                             write, sync or truncate fails, as an I/O error
                             (io:N) or a full disk (full:N), for N = 1, 2, 3, 5,
                             8, 13, ... (Fibonacci) until a run has fewer writes than N
    test_io.py disk          the stage's folder on a small tmpfs filled up to
                             a few KiB (database, tensors, checkpoint, report
                             files: real ENOSPC); skipped when mount is refused

Each failed run must exit 1 with one line on stderr that says what failed,
leave a database that passes PRAGMA integrity_check, and the same command
run again without the fault must end with the database (and checkpoint) of
an undisturbed run."""
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as F  # noqa: E402

MESSAGES = ("disk I/O error", "database or disk is full", "No space left on device", "disk is full")


def check_failed_run(what, rc, err, d):
    """The checks on a run that met a fault; returns a reason or None."""
    lines = [l for l in err.splitlines() if l.strip()]
    if rc != 1:
        return "%s: exit %d, expected 1 (%s)" % (what, rc, err.strip()[-300:])
    if len(lines) != 1:
        return "%s: %d lines on stderr, expected one: %r" % (what, len(lines), lines[:4])
    if not any(m in lines[0] for m in MESSAGES):
        return "%s: the error does not say what failed: %s" % (what, lines[0])
    ok, r = F.integrity(os.path.join(d, "c.db"))
    if not ok:
        return "%s: integrity_check %r" % (what, r[:3])
    return None


def check_rerun(what, cache, stage, want, d):
    rc, out, err = F.run(F.stage_cmd(stage), d)
    if rc != 0:
        return "%s: the re-run exit %d: %s" % (what, rc, err.strip()[-300:])
    why = F.diff(want, F.dump(os.path.join(d, "c.db")))
    if why:
        return "%s: after the re-run: %s" % (what, why)
    ref = F.state(cache, stage, after=True)
    if stage == "train" and not filecmp.cmp(os.path.join(ref, "m.safetensors"),
                                            os.path.join(d, "m.safetensors"), shallow=False):
        return "%s: the re-run's checkpoint differs from an undisturbed run's" % what
    if F.tensor_names(ref) != F.tensor_names(d):
        return "%s: tensor files %s, expected %s" % (what, F.tensor_names(d), F.tensor_names(ref))
    return None


def vfs(stage):
    cache, times = F.base()
    want = F.dump(os.path.join(F.state(cache, stage, after=True), "c.db"))
    work = tempfile.mkdtemp(prefix="fvlm-io-%s-" % stage)
    fails, points, last = [], 0, None
    seq = [1, 2]
    while seq[-1] < 100000:
        seq.append(seq[-1] + seq[-2])
    t0 = time.monotonic()
    for k, n in enumerate(seq):
        kind = "io" if k % 2 == 0 else "full"
        what = "%s with FVLM_FAULT_VFS=%s:%d" % (stage, kind, n)
        d = os.path.join(work, "%s%d" % (kind, n))
        F.copy_state(F.state(cache, stage, after=False), d)
        env = dict(F.ENV, FVLM_FAULT_VFS="%s:%d" % (kind, n))
        rc, out, err = F.run(F.stage_cmd(stage), d, env=env)
        if rc == 0:
            last = n  # the run has fewer writes than n: every point before was a fault
            shutil.rmtree(d)
            break
        points += 1
        why = check_failed_run(what, rc, err, d) or check_rerun(what, cache, stage, want, d)
        if why:
            fails.append(why)
        else:
            shutil.rmtree(d)
    if last is None:
        fails.append("%s: still failing at write %d: the sweep never reached the end"
                     % (stage, seq[-1]))
    for f in fails[:10]:
        print("FAILED: " + f, file=sys.stderr)
    print("%s: %d injected faults (I/O error and full disk alternately, writes 1 to %d), %d "
          "failed checks, %.1f s" % (stage, points, last or 0, len(fails), time.monotonic() - t0))
    if not fails:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if fails else 0


def disk():
    cache, times = F.base()
    if os.geteuid() != 0:
        F.skip("mounting a tmpfs needs root")
    mnt = tempfile.mkdtemp(prefix="fvlm-full-")
    fails, points = [], 0
    t0 = time.monotonic()
    try:
        for stage in F.STAGES:
            src = F.state(cache, stage, after=False)
            after = F.state(cache, stage, after=True)
            need = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(after) for f in fs)
            want = F.dump(os.path.join(F.state(cache, stage, after=True), "c.db"))
            for free_kib in (8, 64, 256):
                size = 2 * need + 1024 * 1024  # room for the re-run once the filler goes
                p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size, "tmpfs", mnt],
                                   stderr=subprocess.PIPE)
                if p.returncode != 0:
                    F.skip("mount -t tmpfs refused: %s" % p.stderr.decode().strip())
                try:
                    d = os.path.join(mnt, "w")
                    F.copy_state(src, d)
                    st = os.statvfs(mnt)
                    avail = st.f_bavail * st.f_frsize
                    fill = max(0, avail - free_kib * 1024)
                    with open(os.path.join(mnt, "filler"), "wb") as f:
                        f.write(b"\0" * fill)
                    what = "%s with %d KiB free" % (stage, free_kib)
                    rc, out, err = F.run(F.stage_cmd(stage), d)
                    if rc != 0:
                        points += 1
                        # space freed first: SQLite needs a little to open a WAL database
                        os.unlink(os.path.join(mnt, "filler"))
                        why = check_failed_run(what, rc, err, d)
                        why = why or check_rerun(what, cache, stage, want, d)
                        if why:
                            fails.append(why)
                finally:
                    subprocess.run(["umount", mnt])
    finally:
        os.rmdir(mnt)
    for f in fails[:10]:
        print("FAILED: " + f, file=sys.stderr)
    print("full disk: %d runs met it (5 stages x 3 sizes), %d failed checks, %.1f s"
          % (points, len(fails), time.monotonic() - t0))
    if points == 0:
        fails.append("no stage ran out of space: the test tested nothing")
        print("FAILED: " + fails[-1], file=sys.stderr)
    return 1 if fails else 0


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "vfs" and sys.argv[2] in F.STAGES:
        return vfs(sys.argv[2])
    if len(sys.argv) == 2 and sys.argv[1] == "disk":
        return disk()
    print("usage: test_io.py vfs STAGE | disk", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
