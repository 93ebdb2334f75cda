#!/usr/bin/python3
"""Do synthetic reports say what their truth says? Writes a corpus with
$FVLM_BIN synth, parses every report with `fvlm parse-text` and compares the
parser's labels with the truth's labels_reported. Every present or uncertain
statement must be read as such (the reports only use vocabulary the ontology
knows); agreement on absent statements (normal statements, negations) is
printed, not enforced, since it depends on how the parser reads wordings
such as "normal in caliber".

usage: parse_agreement.py [STUDIES]     exit 0 ok, 1 failed, 77 when parse-text is not built
"""
import collections
import csv
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile

fvlm = os.environ["FVLM_BIN"]
if subprocess.run([fvlm, "parse-text", "--help"], capture_output=True).returncode != 0:
    print("skip: this build has no parse-text")
    sys.exit(77)
n = sys.argv[1] if len(sys.argv) > 1 else "80"
with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([fvlm, "synth", "--out", tmp, "--studies", n, "--seed", "21", "--size", "tiny",
                    "--quiet"], check=True)
    studies = [json.loads(l) for l in open(os.path.join(tmp, "truth", "studies.jsonl"), encoding="utf-8")]
    ct = {}
    path = os.path.join(tmp, "ctrate", "reports.csv")
    if os.path.exists(path):
        for r in csv.DictReader(open(path, newline="", encoding="utf-8")):
            f = "" if r["Findings_EN"] == "Not given." else r["Findings_EN"]
            i = "" if r["Impressions_EN"] == "Not given." else r["Impressions_EN"]
            ct[r["VolumeName"]] = f"Findings: {f}\n\nImpression: {i}"
    pos = pos_ok = union = union_ok = 0
    missed = collections.Counter()
    for st in studies:
        if st["layout"] == "hospital":
            p = os.path.join(tmp, st["path"])
            raw = zipfile.ZipFile(p).read("report.txt") if p.endswith(".zip") else \
                tarfile.open(p).extractfile("report.txt").read()
            text = raw.decode("gb18030") if st["report_encoding"] == "gb18030" else raw.decode("utf-8-sig")
        else:
            text = ct[os.path.basename(st["path"])]
        out = subprocess.run([fvlm, "parse-text", "--compact", "--quiet", "--lang", st["language"]],
                             input=text.encode(), capture_output=True, check=True)
        got = json.loads(out.stdout)["labels"]
        want = st["labels_reported"]
        for k in set(got) | set(want):
            union += 1
            union_ok += got.get(k) == want.get(k)
        for k, v in want.items():
            if v in (1, -1):
                pos += 1
                if got.get(k) == v:
                    pos_ok += 1
                else:
                    missed[(k, v, got.get(k), st["language"])] += 1
print(f"present/uncertain statements read as written: {pos_ok}/{pos} = {pos_ok / pos:.4f}")
print(f"all stated labels (present, uncertain, absent) agree: {union_ok}/{union} = {union_ok / union:.4f}")
for k, c in missed.most_common(10):
    print("  differs:", c, k)
if pos_ok < 0.97 * pos:
    print("FAILED: the parser misreads more than 3 % of the present or uncertain statements",
          file=sys.stderr)
    sys.exit(1)
