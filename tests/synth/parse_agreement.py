#!/usr/bin/python3
"""Do the parser's labels say what the synthetic reports state? Writes a corpus
with $FVLM_BIN synth, parses every report with `fvlm parse-text` and compares
the parser's study labels with the truth's labels_reported (what each report
states: 1 present, 0 absent, -1 uncertain; a task the report does not state is
missing there).

Prints the agreement over every label that either side states (a label only
the parser states counts as a disagreement), per language and per task, and
the confusion of truth (present / absent / uncertain / unstated) against the
parser. With --show N, prints up to N disagreements with the sentence that
decided the parser's label, for debugging the rules.

Fails when a present or uncertain statement is misread in more than --min-pos
of the cases, or when overall agreement is below --min-agreement.

usage: parse_agreement.py [--studies N] [--seed S] [--layout hospital|ctrate|both]
                          [--lang zh|en|mix] [--show N] [--min-agreement F] [--min-pos F]
exit 0 ok, 1 failed, 77 when parse-text is not built
"""
import argparse
import collections
import csv
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

ap = argparse.ArgumentParser()
ap.add_argument("--studies", default="200")
ap.add_argument("--seed", default="1")
ap.add_argument("--layout", default="both")
ap.add_argument("--lang", default="mix")
ap.add_argument("--show", type=int, default=0)
ap.add_argument("--min-agreement", type=float, default=0.99)
ap.add_argument("--min-pos", type=float, default=0.99)
args = ap.parse_args()

fvlm = os.environ["FVLM_BIN"]
if subprocess.run([fvlm, "parse-text", "--help"], capture_output=True).returncode != 0:
    print("skip: this build has no parse-text")
    sys.exit(77)

NAMES = {1: "present", 0: "absent", -1: "uncertain", None: "unstated"}
ORDER = [1, 0, -1, None]


def read_reports(tmp, studies):
    """(study, report text) for every study, as a user's files hold them."""
    ct = {}
    path = os.path.join(tmp, "ctrate", "reports.csv")
    if os.path.exists(path):
        for r in csv.DictReader(open(path, newline="", encoding="utf-8")):
            f = "" if r["Findings_EN"] == "Not given." else r["Findings_EN"]
            i = "" if r["Impressions_EN"] == "Not given." else r["Impressions_EN"]
            ct[r["VolumeName"]] = f"Findings: {f}\n\nImpression: {i}"
    for st in studies:
        if st["layout"] == "hospital":
            p = os.path.join(tmp, st["path"])
            raw = zipfile.ZipFile(p).read("report.txt") if p.endswith(".zip") else \
                tarfile.open(p).extractfile("report.txt").read()
            text = raw.decode("gb18030") if st["report_encoding"] == "gb18030" else raw.decode("utf-8-sig")
        else:
            text = ct[os.path.basename(st["path"])]
        yield st, text


def deciding_sentence(parsed, task, value):
    """The first sentence with a finding of task at the label's value (the
    one the label points to), as 'polarity rule: sentence'."""
    for s in parsed["sentences"]:
        for f in s["findings"]:
            if f["task"] == task and f["polarity"] == value:
                return f"{f['rule']}: {s['text']!r}"
    return ""


with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([fvlm, "synth", "--out", tmp, "--studies", args.studies, "--seed", args.seed,
                    "--layout", args.layout, "--lang", args.lang, "--size", "tiny", "--quiet"],
                   check=True)
    studies = [json.loads(l) for l in open(os.path.join(tmp, "truth", "studies.jsonl"), encoding="utf-8")]
    conf = {lang: collections.Counter() for lang in ("zh", "en")}
    per_task = collections.defaultdict(lambda: [0, 0])
    shown = []
    for st, text in read_reports(tmp, studies):
        lang = st["language"]
        out = subprocess.run([fvlm, "parse-text", "--compact", "--quiet", "--lang", lang],
                             input=text.encode(), capture_output=True, check=True)
        parsed = json.loads(out.stdout)
        got = parsed["labels"]
        want = st["labels_reported"]
        for k in sorted(set(got) | set(want)):
            w, g = want.get(k), got.get(k)
            conf[lang][(w, g)] += 1
            per_task[k][0] += 1
            per_task[k][1] += w == g
            if w != g and len(shown) < args.show:
                shown.append(f"  study {st['index']} ({lang}) {k}: truth {NAMES[w]}, parsed {NAMES[g]}"
                             + (f"  [{deciding_sentence(parsed, k, g)}]" if g is not None else ""))


def agreement(c):
    n = sum(c.values())
    ok = sum(v for (w, g), v in c.items() if w == g)
    return ok, n


total = conf["zh"] + conf["en"]
print(f"synthetic reports: {len(studies)} studies, seed {args.seed}, layout {args.layout}, "
      f"language {args.lang}")
for name, c in (("zh", conf["zh"]), ("en", conf["en"]), ("all", total)):
    ok, n = agreement(c)
    if n:
        print(f"agreement over stated labels, {name:3}: {ok}/{n} = {ok / n:.4f}")
print("confusion (rows: truth, columns: parsed), both languages:")
print(f"  {'':10}" + "".join(f"{NAMES[g]:>11}" for g in ORDER))
for w in ORDER:
    if w is None and not any(total[(None, g)] for g in ORDER):
        continue
    print(f"  {NAMES[w]:10}" + "".join(f"{total[(w, g)]:>11}" for g in ORDER))
print("per task (labels stated by either side, agreeing, agreement):")
for k in sorted(per_task, key=lambda k: (per_task[k][1] / per_task[k][0], k)):
    n, ok = per_task[k]
    print(f"  {k:36} {n:5} {ok:5}  {ok / n:.4f}")
for line in shown:
    print(line)

ok, n = agreement(total)
pos = sum(v for (w, g), v in total.items() if w in (1, -1))
pos_ok = sum(v for (w, g), v in total.items() if w in (1, -1) and w == g)
print(f"present/uncertain statements read as written: {pos_ok}/{pos} = {pos_ok / max(pos, 1):.4f}")
fail = 0
if pos and pos_ok < args.min_pos * pos:
    print(f"FAILED: fewer than {args.min_pos:.2%} of the present or uncertain statements read as "
          "written", file=sys.stderr)
    fail = 1
if n and ok < args.min_agreement * n:
    print(f"FAILED: agreement {ok / n:.4f} is below {args.min_agreement}", file=sys.stderr)
    fail = 1
sys.exit(fail)
