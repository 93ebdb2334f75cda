#!/usr/bin/python3
"""Sentence-level quality of `fvlm align`'s links on CT-RATE development reports.

Reference: ../shared/data/ctrate-dev/anatomy_findings.json and
anatomy_impressions.json, the same reports split per anatomy by a language
model (a third party's, in fVLM's desc_info/conc_info layout). A reference,
not ground truth: the measurement shows where we and it disagree.

What it does: builds a corpus database from reports.csv (with --ingest
through `fvlm ingest`; else one study per volume written here, the report as
ingest stores a CT-RATE row: "Findings: ...\\n\\nImpression: ..."), runs
`fvlm parse` and `fvlm align` on it, and compares,
for every findings or impression sentence and every anatomy the reference
names, whether we link the sentence to the anatomy with whether the
reference's text of that anatomy (in the same section) contains the
sentence. "Contains" is measured on word bigrams (at least half of the
sentence's bigrams appear in the reference text, or the sentence holds 80%
of the bigrams of one reference sentence), so the reference's small
rewordings, partial copies and dropped lead-ins still match.

Prints per anatomy precision, recall and F1, the macro F1 over the
anatomies fVLM trains on (lung, heart, esophagus, aorta: the four of its
released code) and over every anatomy the reference names at least 10
times, and, with --examples N, sentences where we and the reference
disagree. With --classes (ctrate_disagreements.tsv beside this script by
default; "none" to skip), every disagreement over fVLM's anatomies is put in
a class of that file (the reference's error, the matcher's miss, a
convention, or ours) and the table of classes is printed with the F1 the
four anatomies would have if the reference's errors and the matcher's misses
were corrected, and if the reference also followed our conventions. Exits 77
(skip) when the shared data or Debian's python is absent; 1 when the fVLM
macro F1 is below --min-macro.

The reports are research-only: nothing of them is written outside a
temporary folder, which is removed at the end.
"""
import argparse
import csv
import hashlib
import hmac
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile

FVLM4 = ["lung", "heart", "esophagus", "aorta"]



def schema_version(source_root):
    """FVLM_SCHEMA_VERSION from lib/db.h: the version corpus.sql is at."""
    with open(os.path.join(source_root, "lib", "db.h"), encoding="utf-8") as f:
        return int(re.search(r"#define FVLM_SCHEMA_VERSION (\d+)", f.read()).group(1))

def tokens(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def bigrams(toks):
    if len(toks) < 2:
        return set(toks)
    return {(toks[i], toks[i + 1]) for i in range(len(toks) - 1)}


def ref_entry(text):
    """A reference text as matched: its bigrams and words, and per sentence
    of it the bigrams of that sentence."""
    toks = tokens(text)
    parts = [bigrams(tokens(p)) for p in re.split(r"(?<=[.;])\s+", text) if len(tokens(p)) >= 3]
    return bigrams(toks), set(toks), parts


def contained(sentence, ref):
    """Whether the reference text holds the sentence: half of its word
    bigrams (or its one word) appear in the reference, or the sentence holds
    a whole reference sentence (the reference often drops a lead-in such as
    "As far as can be observed:")."""
    ref_bigrams, ref_tokens, parts = ref
    toks = tokens(sentence)
    if not toks:
        return False
    if len(toks) == 1:
        return toks[0] in ref_tokens
    bg = bigrams(toks)
    if len(bg & ref_bigrams) >= 0.5 * len(bg):
        return True
    return any(len(p & bg) >= 0.8 * len(p) for p in parts)


def load_classes(path):
    """The rules of ctrate_disagreements.tsv, in order."""
    rules = []
    with open(path, encoding="utf-8") as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]
    head = rows[0]
    for n, r in enumerate(rows[1:], start=2):
        rec = dict(zip(head, r))
        if len(r) != len(head) or rec["kind"] not in ("reference", "measurement", "convention", "ours"):
            sys.exit("%s: rule %d is malformed" % (path, n))
        rec["links_re"] = None if rec["links"] == "*" else re.compile(rec["links"])
        if rec["pattern"].startswith("@") and rec["pattern"] != "@no_reference_text":
            sys.exit("%s: rule %d: unknown test %s" % (path, n, rec["pattern"]))
        rec["pattern_re"] = (None if rec["pattern"] == "*" or rec["pattern"].startswith("@")
                             else re.compile(rec["pattern"], re.I))
        rules.append(rec)
    return rules


def classify(rules, anatomy, side, text, links, ref_words):
    """The first rule that takes the disagreement (side: ours or reference;
    links: our links of the sentence as "anatomy:method ..."; ref_words: the
    words of the reference's text of that anatomy in that section), or None.
    The pattern "@no_reference_text" takes a disagreement where the
    reference has no text (under two words) for the anatomy."""
    for r in rules:
        if r["anatomy"] not in ("*", anatomy) or r["side"] not in ("*", side):
            continue
        if r["links_re"] and not r["links_re"].search(links):
            continue
        if r["pattern"] == "@no_reference_text" and ref_words >= 2:
            continue
        if r["pattern_re"] and not r["pattern_re"].search(text):
            continue
        return r
    return None


def build_db(path, source_root, reports_csv):
    con = sqlite3.connect(path)
    with open(os.path.join(source_root, "schemas", "corpus.sql"), encoding="utf-8") as f:
        con.executescript(f.read())
    con.execute("PRAGMA user_version = %d" % schema_version(source_root))
    keys = []
    with open(reports_csv, newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f), start=1):
            # valid_1_a_1.nii.gz -> valid_1_a: the reference's study key.
            key = re.sub(r"_\d+\.nii(\.gz)?$", "", row["VolumeName"])
            text = "Findings: %s\n\nImpression: %s" % (row["Findings_EN"].strip(),
                                                       row["Impressions_EN"].strip())
            con.execute("INSERT INTO studies (id, study_key, dataset, split) VALUES (?, ?, 'ctrate', 'valid')",
                        (i, key))
            con.execute("INSERT INTO reports (study_id, sha256, source, format, language, encoding, text)"
                        " VALUES (?, ?, 'reports.csv', 'ctrate_csv', 'en', 'utf-8', ?)", (i, key, text))
            keys.append(key)
    con.commit()
    con.close()
    return keys


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write("%s failed (exit %d):\n%s\n" % (" ".join(cmd), p.returncode, p.stderr[-2000:]))
        sys.exit(1)
    return p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.environ.get("FVLM_BIN"), help="the fvlm binary")
    ap.add_argument("--source-root", default=os.environ.get("FVLM_SOURCE_ROOT", "."))
    ap.add_argument("--shared", default=os.environ.get("FVLM_SHARED"),
                    help="the shared folder (default: ../shared beside the source root)")
    ap.add_argument("--min-macro", type=float, default=0.0,
                    help="fail when the fVLM-4 macro F1 is below this")
    ap.add_argument("--examples", type=int, default=0, help="disagreements to print per anatomy")
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--set", action="append", default=[], help="passed to fvlm align --set")
    ap.add_argument("--ingest", action="store_true",
                    help="load reports.csv with fvlm ingest (else rows are written here)")
    ap.add_argument("--methods", default="mention,finding,continuation,audit",
                    help="link methods measured (those that feed the texts)")
    ap.add_argument("--classes", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                      "ctrate_disagreements.tsv"),
                    help="classes of disagreements ('none' to skip)")
    ap.add_argument("--confidence-out",
                    help="write each link rule's precision against the reference to this TSV"
                         " (schemas/align_confidence.tsv: align's link confidence)")
    ap.add_argument("--max-unexplained", type=int, default=-1,
                    help="fail when more disagreements over fVLM's anatomies than this are ours"
                         " or unclassified (a new error of ours shows up here)")
    a = ap.parse_args()
    shared = a.shared or os.path.join(a.source_root, "..", "shared")
    data = os.path.join(shared, "data", "ctrate-dev")
    if not os.path.exists(os.path.join(data, "anatomy_findings.json")):
        print("SKIP: %s is absent" % data)
        sys.exit(77)
    if not a.bin:
        sys.exit("--bin or FVLM_BIN is required")
    with open(os.path.join(data, "anatomy_findings.json"), encoding="utf-8") as f:
        ref_find = json.load(f)
    with open(os.path.join(data, "anatomy_impressions.json"), encoding="utf-8") as f:
        ref_imp = json.load(f)
    # The reference names anatomies as fVLM and TotalSegmentator do; ours
    # come from `fvlm export --format fvlm`'s mapping (align_anatomy.tsv).
    rename = {}
    with open(os.path.join(a.source_root, "schemas", "align_anatomy.tsv"), encoding="utf-8") as f:
        rows = [l.rstrip("\n").split("\t") for l in f if l.strip() and not l.startswith("#")]
    head = rows[0]
    for r in rows[1:]:
        rec = dict(zip(head, r))
        rename[rec["fvlm_name"]] = rec["id"]

    tmp = tempfile.mkdtemp(prefix="fvlm-ctrate-quality.")
    try:
        db = os.path.join(tmp, "corpus.db")
        # Study keys back to CT-RATE's names: ingest stores HMAC(key, "study:<id>").
        unkey = {}
        if a.ingest:
            key = "ctrate-quality-test-key"
            os.environ["FVLM_DEID_KEY"] = key
            run([a.bin, "ingest", "--quiet", "--db", db, os.path.join(data, "reports.csv")])
            for k in ref_find:
                unkey[hmac.new(key.encode(), ("study:" + k).encode(), hashlib.sha256).hexdigest()] = k
        else:
            build_db(db, a.source_root, os.path.join(data, "reports.csv"))
        run([a.bin, "parse", "--quiet", "--db", db])
        cmd = [a.bin, "align", "--quiet", "--db", db]
        for s in a.set:
            cmd += ["--set", s]
        run(cmd)
        con = sqlite3.connect(db)
        sents = [(sid, unkey.get(k, k), idx, sec, text) for sid, k, idx, sec, text in con.execute(
            "SELECT s.id, st.study_key, s.idx, s.section, s.text FROM sentences s"
            " JOIN studies st ON st.id = s.study_id WHERE s.section IN ('findings', 'impression')"
            " ORDER BY s.study_id, s.idx")]
        linked = {}
        rules = {}  # sentence id -> [(anatomy or '', method, rule)]
        for sid, anat, method, rule in con.execute(
                "SELECT sentence_id, anatomy, method, rule FROM links"
                " WHERE (accepted IS NULL OR accepted <> 0) ORDER BY rowid"):
            rules.setdefault(sid, []).append((anat, method, rule))
            if anat:
                linked.setdefault(sid, {})[anat] = method
        statuses = {(unkey.get(k, k), a_): st for k, a_, st in con.execute(
            "SELECT s.study_key, a.anatomy, a.status FROM anatomy_status a"
            " JOIN studies s ON s.id = a.study_id")}
        con.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # Per study, section and anatomy: the reference text's bigrams.
    ref = {}
    for section, src in (("findings", ref_find), ("impression", ref_imp)):
        for key, per in src.items():
            for name, text in per.items():
                anat = rename.get(name, name)
                ref[(key, section, anat)] = ref_entry(text)
    anatomies = sorted({k[2] for k in ref})
    text_methods = set(a.methods.split(","))

    def evaluate(methods):
        counts = {an: [0, 0, 0, 0] for an in anatomies}  # tp, fp, fn, reference sentences
        examples = {an: [] for an in anatomies}
        disagreements = []  # (anatomy, side, key, section, text, our links of the sentence)
        by_method = {}  # method -> [agree, disagree] over the evaluated anatomies
        for sid, key, idx, section, text in sents:
            ours = {an: m for an, m in linked.get(sid, {}).items() if methods is None or m in methods}
            for an in anatomies:
                r = ref.get((key, section, an))
                truth = r is not None and contained(text, r)
                pred = an in ours
                c = counts[an]
                c[3] += truth
                if pred:
                    by_method.setdefault(ours[an], [0, 0])[0 if truth else 1] += 1
                all_links = " ".join("%s:%s" % (x, m) for x, m in linked.get(sid, {}).items())
                if truth and pred:
                    c[0] += 1
                elif pred:
                    c[1] += 1
                    examples[an].append(("ours only, " + ours[an], key, section, text))
                    disagreements.append((an, "ours", key, section, text, all_links,
                                          len(r[1]) if r is not None else 0))
                elif truth:
                    c[2] += 1
                    examples[an].append(("reference only", key, section, text))
                    disagreements.append((an, "reference", key, section, text, all_links,
                                          len(r[1]) if r is not None else 0))
        figures = {}
        for an in anatomies:
            c = counts[an]
            p = c[0] / (c[0] + c[1]) if c[0] + c[1] else 0.0
            r = c[0] / (c[0] + c[2]) if c[0] + c[2] else 0.0
            f = 2 * p * r / (p + r) if p + r else 0.0
            figures[an] = {"reference_sentences": c[3], "tp": c[0], "fp": c[1], "fn": c[2],
                           "precision": p, "recall": r, "f1": f}
        macro4 = sum(figures[x]["f1"] for x in FVLM4 if x in figures) / len(FVLM4)
        named = [an for an in anatomies if counts[an][3] >= 10]
        macro_named = sum(figures[an]["f1"] for an in named) / len(named) if named else 0.0
        return figures, macro4, named, macro_named, examples, by_method, disagreements

    figures, macro4, named, macro_named, examples, by_method, disagreements = evaluate(text_methods)
    all_fig, all_macro4, _, all_named, _, all_by_method, _ = evaluate(None)
    print("%d sentences of %d reports (findings and impression sections); links of methods %s"
          " (the ones that feed the training texts, align.text_methods)" %
          (len(sents), len({s[1] for s in sents}), ",".join(sorted(text_methods))))
    print("%-22s %5s %5s %5s %5s %6s %6s %6s" % ("anatomy", "ref", "tp", "fp", "fn", "P", "R", "F1"))
    for an in sorted(anatomies, key=lambda x: -figures[x]["reference_sentences"]):
        f = figures[an]
        print("%-22s %5d %5d %5d %5d %6.3f %6.3f %6.3f" % (an, f["reference_sentences"], f["tp"],
              f["fp"], f["fn"], f["precision"], f["recall"], f["f1"]))
    print("macro F1 over fVLM's anatomies (%s): %.3f" % (", ".join(FVLM4), macro4))
    print("macro F1 over the %d anatomies the reference names >= 10 times (%s): %.3f" %
          (len(named), ", ".join(named), macro_named))
    print("with every link (group statements too): macro F1 fVLM %.3f, named %.3f" %
          (all_macro4, all_named))
    print("links to evaluated anatomies by method, agreeing with the reference / not: " +
          ", ".join("%s %d/%d" % (m, v[0], v[1]) for m, v in sorted(all_by_method.items())))
    # Status: fVLM counts an anatomy abnormal when its impression text exists
    # (conc_info); ours is abnormal when an impression sentence linked to it
    # states a present or uncertain finding of it.
    status_fig = {}
    status_examples = []
    for an in FVLM4 + [x for x in anatomies if x not in FVLM4]:
        tp = fp = fn = 0
        for key in ref_imp:
            truth = bool(ref_imp[key].get(next((n for n, i in rename.items() if i == an), an)))
            ours = statuses.get((key, an)) == "abnormal"
            tp += truth and ours
            fp += ours and not truth
            fn += truth and not ours
            if truth != ours:
                status_examples.append((an, key, "ours abnormal" if ours else "reference abnormal"))
        p_ = tp / (tp + fp) if tp + fp else 0.0
        r_ = tp / (tp + fn) if tp + fn else 0.0
        status_fig[an] = {"tp": tp, "fp": fp, "fn": fn, "precision": p_, "recall": r_,
                          "f1": 2 * p_ * r_ / (p_ + r_) if p_ + r_ else 0.0}
    print("abnormal status against the reference's impression split (fVLM's rule):")
    for an in FVLM4:
        f = status_fig[an]
        print("  %-10s tp %3d fp %3d fn %3d  P %.3f R %.3f F1 %.3f" % (an, f["tp"], f["fp"], f["fn"],
              f["precision"], f["recall"], f["f1"]))
    classes_out = None
    if a.classes != "none":
        classes_out = print_classes(load_classes(a.classes), disagreements, figures, a.examples)
        classes_out["named_corrected"] = print_named_corrected(load_classes(a.classes), disagreements,
                                                               figures, named)
    if a.examples:
        print("\n== status disagreements")
        for an, key, kind in status_examples[:a.examples]:
            print("  [%s] %s %s" % (kind, key, an))
        for an in sorted(anatomies, key=lambda x: -figures[x]["reference_sentences"]):
            if not examples[an]:
                continue
            print("\n== %s: disagreements" % an)
            for kind, key, section, text in examples[an][:a.examples]:
                print("  [%s] %s %s: %s" % (kind, key, section, text))
    if a.confidence_out:
        write_confidence(a.confidence_out, sents, rules, linked, ref, set(anatomies),
                         load_classes(a.classes) if a.classes != "none" else [])
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"per_anatomy": figures, "macro_f1_fvlm4": macro4,
                       "macro_f1_named": macro_named, "named": named,
                       "all_links": {"per_anatomy": all_fig, "macro_f1_fvlm4": all_macro4,
                                     "macro_f1_named": all_named},
                       "abnormal_status": status_fig, "classes": classes_out}, f, indent=1)
    if macro4 < a.min_macro:
        print("FAILED: macro F1 %.3f below %.3f" % (macro4, a.min_macro))
        sys.exit(1)
    if classes_out and a.max_unexplained >= 0:
        unexplained = classes_out["by_kind"].get("ours", 0) + classes_out["by_kind"].get("?", 0)
        if unexplained > a.max_unexplained:
            print("FAILED: %d disagreements are ours or unclassified (at most %d); run with"
                  " --examples 1000 to see them" % (unexplained, a.max_unexplained))
            sys.exit(1)


def write_confidence(path, sents, rules, linked, ref, anatomies, classes):
    """Per link rule (and per method, "method:NAME"): how many links to an
    anatomy the reference names the reference agrees with, and how many once
    its known errors are corrected (a disagreement over fVLM's anatomies that
    a class of kind reference or measurement takes counts as agreement: "no
    pleural effusion" is about the lung whatever the reference says). A
    "links to none" record agrees when no reference text of the section
    holds the sentence. Rules with fewer than 10 judged links get no row of
    their own (align then uses their method's)."""
    counts = {}
    for sid, key, idx, section, text in sents:
        all_links = " ".join("%s:%s" % (x, m) for x, m in linked.get(sid, {}).items())
        for anat, method, rule in rules.get(sid, []):
            if anat:
                if anat not in anatomies:
                    continue  # the reference never names it: nothing to judge by
                r = ref.get((key, section, anat))
                agree = r is not None and contained(text, r)
                fixed = agree
                if not agree and anat in FVLM4:
                    c_ = classify(classes, anat, "ours", text, all_links,
                                  len(r[1]) if r is not None else 0)
                    fixed = c_ is not None and c_["kind"] in ("reference", "measurement")
            else:
                agree = fixed = not any(contained(text, ref[(key, section, an)]) for an in anatomies
                                        if (key, section, an) in ref)
            for k in (rule or method, "method:" + method):
                c = counts.setdefault(k, [0, 0, 0])
                c[0] += 1
                c[1] += agree
                c[2] += fixed
    with open(path, "w", encoding="utf-8") as f:
        f.write("# Confidence of align's links, per rule: how often the CT-RATE development\n"
                "# reference (a language model's per-anatomy split of the reports) agrees with a link\n"
                "# of that rule (agree_raw), and how often once the reference's known errors are\n"
                "# corrected (agree: tests/align/ctrate_disagreements.tsv, classes of kind reference\n"
                "# or measurement). align uses (agree + 1) / (links + 2) of the rule's row, else its\n"
                "# method's (method:NAME), else links.c's prior. Rules with under 10 judged links\n"
                "# have no row. Regenerate after changing the parser or the linker:\n"
                "#   /usr/bin/python3 tests/align/ctrate_quality.py --bin build/tools/fvlm --ingest \\\n"
                "#       --confidence-out schemas/align_confidence.tsv\n"
                "rule\tlinks\tagree_raw\tagree\tprecision\n")
        for k in sorted(counts):
            n, raw, ok = counts[k]
            if n >= 10 or k.startswith("method:"):
                f.write("%s\t%d\t%d\t%d\t%.3f\n" % (k, n, raw, ok, ok / n))
    print("link confidence per rule written to %s (%d rules)" % (path, len(counts)))


def print_named_corrected(rules, disagreements, figures, named):
    """F1 of every anatomy the reference names >= 10 times once the
    disagreements that a class of kind reference or measurement takes are
    counted as agreements (the reference's errors and the matcher's misses
    corrected), and their macro."""
    out = {}
    for an in named:
        tp, fp, fn = figures[an]["tp"], figures[an]["fp"], figures[an]["fn"]
        for an_, side, key, section, text, links, ref_words in disagreements:
            if an_ != an:
                continue
            r = classify(rules, an, side, text, links, ref_words)
            if r is None or r["kind"] not in ("reference", "measurement"):
                continue
            if side == "ours":
                tp, fp = tp + 1, fp - 1
            else:
                fn -= 1
        p = tp / (tp + fp) if tp + fp else 0.0
        r_ = tp / (tp + fn) if tp + fn else 0.0
        out[an] = 2 * p * r_ / (p + r_) if p + r_ else 0.0
    macro = sum(out.values()) / len(out) if out else 0.0
    print("F1 of the anatomies named >= 10 times, raw -> with the reference's errors and the"
          " matcher's misses corrected: " +
          ", ".join("%s %.3f -> %.3f" % (an, figures[an]["f1"], out[an]) for an in named) +
          "; macro %.3f" % macro)
    return {"per_anatomy": out, "macro": macro}


def print_classes(rules, disagreements, figures, examples):
    """The table of disagreement classes over fVLM's anatomies and the F1
    they would have with the reference's errors corrected."""
    order = list(dict.fromkeys([r["class"] for r in rules] + ["unclassified"]))
    kind_of = {r["class"]: r["kind"] for r in rules}
    kind_of["unclassified"] = "?"
    note_of = {r["class"]: r["note"] for r in rules}
    table = {}
    members = {}
    for an, side, key, section, text, links, ref_words in disagreements:
        if an not in FVLM4:
            continue
        r = classify(rules, an, side, text, links, ref_words)
        name = r["class"] if r else "unclassified"
        table.setdefault(name, {}).setdefault(an, [0, 0])[0 if side == "ours" else 1] += 1
        members.setdefault(name, []).append((an, side, key, section, text))
    print("\ndisagreements over fVLM's anatomies by class (ours only / reference only):")
    print("  %-12s %-34s %9s %9s %9s %9s %6s" % ("kind", "class", "lung", "heart", "esophagus", "aorta",
                                                  "total"))
    by_kind = {}
    for name in order:
        if name not in table:
            continue
        row = table[name]
        cells = ["%d/%d" % tuple(row.get(an, [0, 0])) for an in FVLM4]
        total = sum(v[0] + v[1] for v in row.values())
        by_kind[kind_of[name]] = by_kind.get(kind_of[name], 0) + total
        print("  %-12s %-34s %9s %9s %9s %9s %6d" % ((kind_of[name], name) + tuple(cells) + (total,)))
    print("  by kind: " + ", ".join("%s %d" % (k, by_kind[k]) for k in
                                  ("reference", "measurement", "convention", "ours", "?") if k in by_kind))

    def adjusted(kinds):
        f1 = {}
        for an in FVLM4:
            tp, fp, fn = figures[an]["tp"], figures[an]["fp"], figures[an]["fn"]
            for name, row in table.items():
                if kind_of[name] in kinds and an in row:
                    tp, fp = tp + row[an][0], fp - row[an][0]
                    fn -= row[an][1]
            p = tp / (tp + fp) if tp + fp else 0.0
            r = tp / (tp + fn) if tp + fn else 0.0
            f1[an] = 2 * p * r / (p + r) if p + r else 0.0
        return f1, sum(f1.values()) / len(FVLM4)

    corrected, macro_c = adjusted(("reference", "measurement"))
    conv, macro_v = adjusted(("reference", "measurement", "convention"))
    print("F1 with the reference's errors and the matcher's misses corrected: " +
          ", ".join("%s %.3f" % (an, corrected[an]) for an in FVLM4) + "; macro %.3f" % macro_c)
    print("... and the reference following our conventions too: " +
          ", ".join("%s %.3f" % (an, conv[an]) for an in FVLM4) + "; macro %.3f" % macro_v)
    if examples:
        for name in order:
            if name not in members:
                continue
            print("\n== class %s (%s): %s" % (name, kind_of[name], note_of.get(name, "no rule takes these")))
            shown = members[name] if name == "unclassified" else members[name][:examples]
            for an, side, key, section, text in shown:
                print("  [%s, %s only] %s %s: %s" % (an, side, key, section, text))
    return {"table": table, "by_kind": by_kind, "corrected": corrected, "macro_corrected": macro_c,
            "with_conventions": conv, "macro_with_conventions": macro_v}


if __name__ == "__main__":
    main()
