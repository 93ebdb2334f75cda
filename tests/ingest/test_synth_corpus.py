#!/usr/bin/python3
"""`fvlm ingest` on corpora written by `fvlm synth` (standard library only).

1. The same synthetic studies written in the hospital layout (DICOM series in
   .tar.gz/.zip, LPS/LPI orders, with or without meta headers) and in the
   CT-RATE layout (NIfTI with sform, qform, both or blank headers rebuilt from
   metadata.csv, in various orientations) land as the same corpus tensor
   whenever synth gave them the same grid.
2. Every study is complete (volume, mask, report) and the run has no errors.
3. No identifying value of the synthetic DICOM headers (truth/studies.jsonl:
   names, ids, birth and study dates, accession numbers, phone numbers,
   institutions, StudyInstanceUIDs) reaches the database, not even through
   archive names, which synth takes from accession numbers.
Skips (77) when this build has no `fvlm synth`.
"""
import hashlib
import hmac
import json
import os
import sqlite3
import struct
import subprocess
import sys
import tempfile

BIN = os.environ["FVLM_BIN"]
KEY = "synth-corpus-key-1"
failures, checks = [], 0


def check(cond, msg):
    global checks
    checks += 1
    if not cond:
        failures.append(msg)
        print("FAILED:", msg, file=sys.stderr)


def run(*args, env=None):
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env)


def pseudonym(kind, source_id):
    return hmac.new(KEY.encode(), f"{kind}:{source_id}".encode(), hashlib.sha256).hexdigest()


def tensor_bytes(db, shard):
    with open(os.path.join(db + ".tensors", shard), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = json.loads(f.read(n))
        body = f.read()
    head.pop("__metadata__", None)
    (name, t), = head.items()
    a, b = t["data_offsets"]
    return tuple(t["shape"]), body[a:b]


def main():
    if "synth" not in run("--help").stdout:
        print("skip: this fvlm has no synth command")
        return 77
    tmp = tempfile.mkdtemp(prefix="fvlm-ingest-synth-")
    env = dict(os.environ, FVLM_DEID_KEY=KEY)
    truths, dbs = {}, {}
    for layout in ("hospital", "ctrate"):
        out = os.path.join(tmp, layout)
        r = run("synth", "--out", out, "--studies", "6", "--seed", "11", "--layout", layout,
                "--size", "tiny", "--quiet")
        check(r.returncode == 0, f"synth {layout}: {r.stderr}")
        db = os.path.join(tmp, layout + ".db")
        r = run("ingest", "--quiet", "--db", db, out, env=env)
        check(r.returncode == 0 and not r.stderr.strip(), f"ingest {layout}: {r.stderr[:500]}")
        truths[layout] = [json.loads(l) for l in open(os.path.join(out, "truth", "studies.jsonl"))]
        dbs[layout] = db
        con = sqlite3.connect(db)
        n, complete, errors = con.execute(
            "SELECT count(*), sum(EXISTS (SELECT 1 FROM volumes v WHERE v.study_id = s.id) AND "
            "EXISTS (SELECT 1 FROM masks m WHERE m.study_id = s.id) AND EXISTS (SELECT 1 FROM "
            "reports r WHERE r.study_id = s.id)), (SELECT count(*) FROM errors) FROM studies s"
        ).fetchone()
        check(n == 6 and complete == 6 and errors == 0,
              f"{layout}: {n} studies, {complete} complete, {errors} errors")
        # No identifying value of the headers anywhere in the database.
        dump = "\n".join(con.iterdump()).lower()
        con.close()
        for t in truths[layout]:
            values = [t["study_id"], str(t.get("patient_id", ""))]
            phi = t["scan"].get("phi") or {}
            values += [v for v in phi.values() if isinstance(v, str)]
            if "dicom_name" in phi:
                values += [p for p in phi["dicom_name"].replace("=", "^").split("^")]
            if "birth_date" in phi:
                b = phi["birth_date"]
                values.append(f"{b[:4]}-{b[4:6]}-{b[6:]}")
            for v in values:
                if layout == "ctrate" and v.startswith(("train_", "valid_")):
                    continue  # CT-RATE's public volume names, not DICOM header values
                if len(v) >= 3:
                    check(v.lower() not in dump, f"{layout}: '{v}' found in the database")
    # The same study in both layouts: the same tensor when synth gave it the
    # same grid.
    compared = 0
    for a, b in zip(truths["hospital"], truths["ctrate"]):
        if a["scan"]["spacing_mm"] != b["scan"]["spacing_mm"] or \
                a["geometry"]["dims"] != b["geometry"]["dims"]:
            continue
        rows = []
        for layout, t in (("hospital", a), ("ctrate", b)):
            con = sqlite3.connect(dbs[layout])
            rows.append(con.execute(
                "SELECT v.shard, m.shard FROM studies s JOIN volumes v ON v.study_id = s.id "
                "JOIN masks m ON m.study_id = s.id WHERE s.study_key = ?",
                (pseudonym("study", t["study_id"]),)).fetchone())
            con.close()
        check(rows[0] and rows[1], f"study {a['index']}: not found by its pseudonym")
        if not (rows[0] and rows[1]):
            continue
        compared += 1
        ha, hb = tensor_bytes(dbs["hospital"], rows[0][0]), tensor_bytes(dbs["ctrate"], rows[1][0])
        check(ha == hb, f"study {a['index']}: {a['geometry']['orientation']} DICOM and "
                        f"{b['geometry']['orientation']} NIfTI ({b['geometry']['header']} header) "
                        f"give different CT tensors {ha[0]} vs {hb[0]}")
        ma, mb = tensor_bytes(dbs["hospital"], rows[0][1]), tensor_bytes(dbs["ctrate"], rows[1][1])
        check(ma == mb, f"study {a['index']}: different mask tensors")
    check(compared >= 1, "no study had the same grid in both layouts")
    print(f"{compared} studies compared across layouts; {checks - len(failures)} of {checks} "
          f"checks passed")
    if not failures:
        subprocess.run(["rm", "-rf", tmp])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
