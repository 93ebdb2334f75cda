"""faultlib: what the fault tests share: a small corpus taken through every
stage once (cached for the suite, built under a lock by whichever test comes
first), each stage's command, and a dump of a database that two runs must
agree on.

Python's standard library only (sqlite3, subprocess); FVLM_BIN names the
binary. The corpus: fvlm synth --size tiny, 8 hospital studies (half in test,
every task at 30% prevalence) on an 8 x 8 x 10 mm grid; the tiny
model preset; one thread everywhere, so runs are deterministic."""
import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

BIN = os.environ.get("FVLM_BIN")
KEY = "test-key-0123456"
STAGES = ["ingest", "parse", "align", "train", "eval"]
ENV = dict(os.environ, FVLM_DEID_KEY=KEY, ASAN_OPTIONS="detect_leaks=0")
ENV.pop("FVLM_FAULT_VFS", None)
INPUTS = [""]  # the synthetic hospital folder, set by base()

# Columns that say when or by which run a row was written, not what it holds.
RUN_COLUMNS = {"run_id", "created_run", "parsed_run", "created_at", "started_at", "ended_at",
               "pid", "model_id", "decided_at"}
# Metrics that measure the machine (throughput), not the model.
TIMING_METRICS = ("samples_per_s", "studies_per_s", "seconds", "step_ms", "data_wait_s")


def skip(why):
    print("SKIP: " + why)
    sys.exit(77)


def fail(msg):
    print("FAILED: " + msg, file=sys.stderr)
    sys.exit(1)


def stage_cmd(stage):
    """The command of a stage, run in the stage's folder (which holds c.db and
    m.safetensors: relative paths, so every folder records the same ones)."""
    if stage == "ingest":
        return [BIN, "ingest", "--db", "c.db", "--quiet", "--set", "ingest.spacing=8,8,10",
                INPUTS[0]]
    if stage == "parse":
        return [BIN, "parse", "--db", "c.db", "--quiet"]
    if stage == "align":
        return [BIN, "align", "--db", "c.db", "--quiet"]
    if stage == "train":
        return [BIN, "train", "--db", "c.db", "--preset", "tiny", "--out", "m.safetensors",
                "--steps", "2", "--threads", "1", "--deterministic", "--seed", "3", "--quiet"]
    if stage == "eval":
        return [BIN, "eval", "--db", "c.db", "--model", "m.safetensors", "--out", "ev",
                "--bootstrap", "20", "--seed", "3", "--quiet"]
    raise ValueError(stage)


def run(cmd, cwd, env=None, timeout=120):
    p = subprocess.run(cmd, cwd=cwd, env=env or ENV, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def copy_state(src, dst):
    """A stage's state: the database (WAL checkpointed by a clean close), its
    tensor folder, the checkpoint."""
    if os.path.exists(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    for n in os.listdir(src):
        s = os.path.join(src, n)
        if os.path.isdir(s):
            shutil.copytree(s, os.path.join(dst, n))
        else:
            shutil.copy2(s, os.path.join(dst, n))


def base():
    """The cache: <cache>/synth (inputs), <cache>/<k>_<stage>/ the state after
    stage k, and times.json (seconds of each uninterrupted stage)."""
    if not BIN or not os.access(BIN, os.X_OK):
        skip("FVLM_BIN is not set")
    cache = os.environ.get("FVLM_FAULT_CACHE") or os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(BIN))), "tests", "fault", "cache")
    os.makedirs(cache, exist_ok=True)
    stamp = "%d-%d" % (os.stat(BIN).st_mtime_ns, os.stat(BIN).st_size)
    INPUTS[0] = os.path.join(cache, "synth", "hospital")
    with open(os.path.join(cache, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tj = os.path.join(cache, "times.json")
        if os.path.exists(tj):
            with open(tj) as f:
                t = json.load(f)
            if t.get("stamp") == stamp:
                return cache, t
        for n in os.listdir(cache):
            if n != ".lock":
                p = os.path.join(cache, n)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
        rc, out, err = run([BIN, "synth", "--out", os.path.join(cache, "synth"), "--studies", "8",
                            "--seed", "5", "--size", "tiny", "--layout", "hospital", "--quiet",
                            "--test-fraction", "0.5", "--min-prevalence", "0.3", "--threads", "1"],
                           cache)
        if rc:
            fail("synth exit %d: %s" % (rc, err[-400:]))
        times = {"stamp": stamp}
        prev = os.path.join(cache, "empty")
        os.makedirs(prev)
        for k, stage in enumerate(STAGES):
            cur = os.path.join(cache, "%d_%s" % (k, stage))
            copy_state(prev, cur)
            t0 = time.monotonic()
            rc, out, err = run(stage_cmd(stage), cur)
            times[stage] = time.monotonic() - t0
            if rc:
                fail("reference %s exit %d: %s" % (stage, rc, err[-400:]))
            prev = cur
        with open(tj, "w") as f:
            json.dump(times, f)
        return cache, times


def state(cache, stage, after):
    """Folder of the state before (after=False) or after a stage."""
    k = STAGES.index(stage) + (1 if after else 0)
    return os.path.join(cache, "empty" if k == 0 else "%d_%s" % (k - 1, STAGES[k - 1]))


def dump(db):
    """Every table but runs and meta, as sorted rows without run ids, times or
    surrogate ids;
    per-run tables (metrics, eval_results, models, errors) only for each
    stage's last run that ended ok: what an interrupted run left half-written
    is history, and a run killed after it ended ok is one more complete run."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    out = {}
    ok_runs = {r[0] for r in con.execute(
        "SELECT max(id) FROM runs WHERE status = 'ok' GROUP BY stage")}
    tables = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT IN ('runs', 'meta') ORDER BY name")]
    # A row id that no foreign key refers to is a surrogate (align deletes and
    # re-inserts a study's flags: the ids move, the facts do not).
    referenced = {r[2] for t in tables for r in con.execute("PRAGMA foreign_key_list(%s)" % t)}
    for t in tables:
        cols = [r[1] for r in con.execute("PRAGMA table_info(%s)" % t)]
        per_run = t in ("metrics", "eval_results", "models", "errors") and "run_id" in cols
        # ids of per-run rows count runs (a model saved by a run killed before it
        # ended is row 1, the re-run's row 2); their references are dropped too
        keep = [c for c in cols if c not in RUN_COLUMNS
                and not (c == "id" and (t not in referenced or per_run))]
        rows = []
        sel = ", ".join(keep + (["run_id"] if per_run else []))
        for r in con.execute("SELECT %s FROM %s" % (sel, t)):
            if per_run:
                if r[-1] not in ok_runs:
                    continue
                r = r[:-1]
            if t == "metrics" and r[keep.index("name")] in TIMING_METRICS:
                continue
            rows.append(tuple(r))
        out[t] = sorted(rows, key=repr)
    con.close()
    return out


def diff(a, b):
    """The first difference between two dumps, or None."""
    for t in sorted(set(a) | set(b)):
        ra, rb = a.get(t), b.get(t)
        if ra == rb:
            continue
        if ra is None or rb is None:
            return "table %s only in one database" % t
        if len(ra) != len(rb):
            return "table %s: %d rows, expected %d" % (t, len(rb), len(ra))
        for x, y in zip(ra, rb):
            if x != y:
                return "table %s: row %r, expected %r" % (t, y, x)
    return None


def integrity(db):
    con = sqlite3.connect(db)
    try:
        r = con.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.Error as exc:
        r = [(str(exc),)]
    finally:
        con.close()
    return r == [("ok",)], r


def tensor_names(d):
    t = os.path.join(d, "c.db.tensors")
    return sorted(os.listdir(t)) if os.path.isdir(t) else []
