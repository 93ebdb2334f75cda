#!/usr/bin/python3
"""Agreement of `fvlm align` with the synthetic corpus's truth file.

Writes a synthetic corpus with `fvlm synth` (hospital and CT-RATE layouts,
Chinese and English reports), loads it with one `fvlm ingest` (a mask met
before its volume waits for the end of that run), runs `fvlm parse` and `fvlm
align`, and compares with DIR/truth/studies.jsonl, study by study (the
truth's study_id maps to the corpus's study_key as HMAC-SHA256 under the
de-identification key of "study:<id>"):

  status    for every anatomy that carries diagnosis tasks (main), the
            truth's status (abnormal when the impression names it, normal
            when the mask covers it, else unmentioned: the truth lists the
            first two) against ours in anatomy_status;
  links     for every finding the generated report states (labels_reported:
            present, uncertain or absent), whether a sentence of the report
            is linked to the task's anatomy; and, stricter, whether the
            sentence in which parse read the finding is (a finding parse did
            not read is then a miss, counted apart);
  coverage  for every anatomy with a mask of its own, whether align found a
            region against the truth's `covered`.

Each is an agreement rate; the goal is >= 0.98 for links and statuses.
Exits 1 when links or statuses are below --min, 77 when `fvlm synth` is not
built in. With --examples N prints disagreements.
"""
import argparse
import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile

KEY = "synth-agreement-test-key"


def run(cmd, env=None, allow_fail=False):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if p.returncode != 0 and not allow_fail:
        sys.stderr.write("%s failed (exit %d):\n%s\n" % (" ".join(cmd), p.returncode, p.stderr[-3000:]))
        sys.exit(1)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("FVLM_BIN"))
    ap.add_argument("--studies", type=int, default=60)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--spacing", default="4, 4, 8", help="ingest.spacing (x, y, z mm)")
    ap.add_argument("--min", type=float, default=0.0, help="fail below this agreement")
    ap.add_argument("--examples", type=int, default=0)
    ap.add_argument("--keep", help="build the corpus in this folder and keep it")
    ap.add_argument("--set", action="append", default=[], help="passed to fvlm align --set")
    a = ap.parse_args()
    if not a.bin:
        sys.exit("--bin or FVLM_BIN is required")
    if "synth" not in run([a.bin, "--help"]).stdout.split():
        print("SKIP: this fvlm has no synth command")
        sys.exit(77)
    tmp = a.keep or tempfile.mkdtemp(prefix="fvlm-synth-agreement.")
    os.makedirs(tmp, exist_ok=True)
    env = dict(os.environ, FVLM_DEID_KEY=KEY)
    try:
        out = os.path.join(tmp, "corpus")
        db = os.path.join(tmp, "corpus.db")
        run([a.bin, "synth", "--quiet", "--force", "--out", out, "--studies", str(a.studies),
             "--seed", str(a.seed), "--size", a.size])
        inputs = [os.path.join(out, d) for d in ("hospital", "ctrate") if os.path.isdir(os.path.join(out, d))]
        # A corpus grid near the tiny phantoms' own (about 8 x 9 x 16 mm)
        # keeps the temporary corpus small; coverage is compared anyway.
        run([a.bin, "ingest", "--quiet", "--db", db, "--set", "ingest.spacing=" + a.spacing] + inputs,
            env=env)
        run([a.bin, "parse", "--quiet", "--db", db])
        cmd = [a.bin, "align", "--quiet", "--db", db]
        for s in a.set:
            cmd += ["--set", s]
        run(cmd)
        with open(os.path.join(out, "truth", "studies.jsonl"), encoding="utf-8") as f:
            truth = [json.loads(l) for l in f if l.strip()]
        con = sqlite3.connect(db)
        ids = {k: i for i, k in con.execute("SELECT id, study_key FROM studies")}
        status = {(s, an): st for s, an, st in con.execute(
            "SELECT study_id, anatomy, status FROM anatomy_status")}
        # (study, task) pairs whose finding sits in a sentence linked to the task's anatomy.
        linked = {(s, an) for s, an in con.execute(
            "SELECT DISTINCT st.study_id, l.anatomy FROM links l JOIN sentences st ON st.id = l.sentence_id"
            " WHERE l.anatomy <> '' AND (l.accepted IS NULL OR l.accepted <> 0)")}
        parsed = {(s, t) for s, t in con.execute("SELECT DISTINCT study_id, task FROM findings")}
        reached = {(s, t) for s, t in con.execute(
            "SELECT DISTINCT f.study_id, f.task FROM findings f JOIN links l ON l.sentence_id = f.sentence_id"
            " AND l.anatomy = f.anatomy WHERE l.accepted IS NULL OR l.accepted <> 0")}
        region = {(s, an) for s, an in con.execute("SELECT study_id, anatomy FROM regions WHERE voxels > 0")}
        texts = {}
        for sid, idx, sec, text in con.execute("SELECT study_id, idx, section, text FROM sentences ORDER BY idx"):
            texts.setdefault(sid, []).append("%s [%d] %s" % (sec[0], idx, text))
        con.close()
    finally:
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas",
                           "anatomy.tsv"), encoding="utf-8") as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]
    head = rows[0]
    anatomies = [dict(zip(head, r)) for r in rows[1:]]
    own_mask = [x["id"] for x in anatomies if x["ts_ids"] != "-"]
    main_anat = [x["id"] for x in anatomies if x["main"] == "1"]
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas",
                           "findings.tsv"), encoding="utf-8") as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]
    task_anatomy = {r[0]: r[1] for r in rows[1:]}

    agree = {"status": [0, 0], "links": [0, 0], "coverage": [0, 0]}
    strict = [0, 0, 0]  # reached through the finding's own sentence, parse read no finding, total
    bad = {"status": [], "links": [], "coverage": []}
    missing = 0
    for t in truth:
        key = hmac.new(KEY.encode(), ("study:" + t["study_id"]).encode(), hashlib.sha256).hexdigest()
        sid = ids.get(key)
        if sid is None:
            missing += 1
            continue
        for an in main_anat:
            want = t["anatomy_status"].get(an, "unmentioned")
            got = status.get((sid, an))
            agree["status"][0] += got == want
            agree["status"][1] += 1
            if got != want:
                bad["status"].append((t["study_id"], t["language"], an, "truth %s, ours %s" % (want, got), sid))
        for task, value in t["labels_reported"].items():
            got = (sid, task_anatomy.get(task, "?")) in linked
            agree["links"][0] += got
            agree["links"][1] += 1
            strict[0] += (sid, task) in reached
            strict[1] += (sid, task) not in parsed
            strict[2] += 1
            if not got:
                bad["links"].append((t["study_id"], t["language"], task,
                                     "stated %s, no sentence linked to %s" %
                                     ({1: "present", 0: "absent", -1: "uncertain"}.get(value, value),
                                      task_anatomy.get(task, "?")), sid))
        for an in own_mask:
            want = an in t["covered"]
            got = (sid, an) in region
            agree["coverage"][0] += got == want
            agree["coverage"][1] += 1
            if got != want:
                bad["coverage"].append((t["study_id"], t["language"], an,
                                        "truth covered, no region" if want else "region, truth not covered", sid))
    print("synthetic corpus: %d studies (seed %d, size %s), %d missing from the corpus" %
          (len(truth), a.seed, a.size, missing))
    failed = missing > 0
    for k in ("status", "links", "coverage"):
        n_ok, n = agree[k]
        rate = n_ok / n if n else 0.0
        print("%-9s agreement %.4f (%d of %d %s)" % (k, rate, n_ok, n,
              "reported findings" if k == "links" else "study-anatomy pairs"))
        if k in ("links", "status") and rate < a.min:
            failed = True
    print("links, strict: %.4f of reported findings sit in a sentence linked to their anatomy;"
          " the other %d are findings parse did not read (%d)" %
          (strict[0] / strict[2] if strict[2] else 0.0, strict[2] - strict[0], strict[1]))
    if a.examples:
        for k in ("status", "links", "coverage"):
            if bad[k]:
                print("\n== %s disagreements" % k)
            for study, lang, an, what, sid in bad[k][:a.examples]:
                print("  %s (%s) %s: %s" % (study[-12:], lang, an, what))
                if k != "coverage":
                    for line in texts.get(sid, []):
                        print("      " + line)
    if failed:
        print("FAILED: agreement below %.2f or studies missing" % a.min)
        sys.exit(1)


if __name__ == "__main__":
    main()
