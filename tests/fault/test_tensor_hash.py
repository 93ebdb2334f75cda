#!/usr/bin/python3
"""A flipped bit in a tensor file is found by its recorded SHA-256 when a
stage loads it: train (a volume shard, a mask shard, the checkpoint it
resumes) and eval (a shard, the model) exit 1 with one line naming the
damaged file, never train or score on the changed bytes; the undamaged
copy still runs."""
import os
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as F  # noqa: E402


def flip(path, where=0.5):
    """Flips one bit in the data section (after the JSON header)."""
    with open(path, "r+b") as f:
        hlen = struct.unpack("<Q", f.read(8))[0]
        size = os.path.getsize(path)
        at = 8 + hlen + int((size - 8 - hlen - 1) * where)
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x04]))
    return at


def shard_of(d, table):
    import sqlite3
    con = sqlite3.connect(os.path.join(d, "c.db"))
    name = con.execute("SELECT shard FROM %s ORDER BY id LIMIT 1" % table).fetchone()[0]
    con.close()
    return os.path.join(d, "c.db.tensors", name)


def main():
    cache, times = F.base()
    work = tempfile.mkdtemp(prefix="fvlm-hash-")
    fails = []
    cases = [("train", "volumes", "a volume shard"), ("train", "masks", "a mask shard"),
             ("eval", "volumes", "a volume shard"), ("eval", "model", "the model checkpoint")]
    resume = [x for x in F.stage_cmd("train")] + ["--resume", "--steps", "3"]
    for k, (stage, table, what) in enumerate(cases + [("train", "resume", "the checkpoint resumed")]):
        d = os.path.join(work, "c%d" % k)
        if table == "resume":
            F.copy_state(F.state(cache, "train", after=True), d)
            target = os.path.join(d, "m.safetensors")
        else:
            F.copy_state(F.state(cache, stage, after=False), d)
            target = os.path.join(d, "m.safetensors") if table == "model" else shard_of(d, table)
        cmd = resume if table == "resume" else F.stage_cmd(stage)
        # Undamaged first: the check passes clean files (a test that cannot fail otherwise).
        clean = os.path.join(work, "clean%d" % k)
        F.copy_state(d, clean)
        rc, out, err = F.run(cmd, clean)
        if rc != 0:
            fails.append("%s with %s intact: exit %d: %s" % (stage, what, rc, err.strip()[-300:]))
        shutil.rmtree(clean)
        at = flip(target)
        rc, out, err = F.run(cmd, d)
        lines = [l for l in err.splitlines() if l.strip()]
        name = os.path.basename(target)
        if rc != 1 or len(lines) != 1 or name not in lines[0] or "damaged" not in lines[0]:
            fails.append("%s with a bit flipped at byte %d of %s (%s): exit %d, stderr %r"
                         % (stage, at, what, name, rc, lines[:3]))
    for f in fails:
        print("FAILED: " + f, file=sys.stderr)
    print("tensor hashes: %d damaged files, %d not reported as damaged" % (len(cases) + 1, len(fails)))
    if not fails:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
