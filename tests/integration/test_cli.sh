#!/bin/sh
# The `fvlm` command line: help, version, exit codes, failed stdout writes.
set -u
bin=${FVLM_BIN:?FVLM_BIN is not set}
fails=0
fail() { echo "FAILED: $*" >&2; fails=$((fails + 1)); }

expect_rc() { # expected-rc description command...
    want=$1; shift; what=$1; shift
    "$@" >/tmp/fvlm-cli-out.$$ 2>/tmp/fvlm-cli-err.$$
    got=$?
    [ "$got" = "$want" ] || fail "$what: exit $got, expected $want ($(head -c 300 /tmp/fvlm-cli-err.$$))"
}

expect_rc 0 "fvlm --help" "$bin" --help
grep -q "usage: fvlm" /tmp/fvlm-cli-out.$$ || fail "--help does not print usage"
expect_rc 0 "fvlm --version" "$bin" --version
grep -q "sqlite" /tmp/fvlm-cli-out.$$ || fail "--version lacks dependency versions"
grep -q "libarchive" /tmp/fvlm-cli-out.$$ || fail "--version lacks libarchive"
expect_rc 2 "no arguments" "$bin"
expect_rc 2 "unknown command" "$bin" no-such-command
grep -q "not a command" /tmp/fvlm-cli-err.$$ || fail "unknown command message"

# Every listed subcommand documents itself.
cmds=$("$bin" --help | awk '/^commands:/{on=1; next} on && /^  [a-z]/{print $1}')
[ -n "$cmds" ] || fail "no commands listed"
for c in $cmds; do
    expect_rc 0 "fvlm $c --help" "$bin" "$c" --help
    grep -q "usage: fvlm $c" /tmp/fvlm-cli-out.$$ || fail "fvlm $c --help lacks a usage line"
    expect_rc 2 "fvlm $c --no-such-option" "$bin" "$c" --no-such-option
done

# A failed write to stdout is an error (exit 1), not silent success.
if [ -w /dev/full ]; then
    expect_rc 1 "--help > /dev/full" sh -c "\"$bin\" --help > /dev/full"
    expect_rc 1 "ontology > /dev/full" sh -c "\"$bin\" ontology > /dev/full"
fi

expect_rc 0 "fvlm ontology" "$bin" ontology
grep -q "diagnosis tasks" /tmp/fvlm-cli-out.$$ || fail "ontology summary"
expect_rc 0 "fvlm ontology --json" "$bin" ontology --json
if command -v /usr/bin/python3 >/dev/null; then
    /usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert len(d["tasks"]) >= 54' \
        /tmp/fvlm-cli-out.$$ || fail "ontology --json is not valid JSON with >= 54 tasks"
fi
# A broken schema folder is a clear error naming the file and line.
tmp=$(mktemp -d)
src=${FVLM_SOURCE_ROOT:?}/schemas
cp "$src"/*.tsv "$tmp"/
printf 'bogus_task\tno_such_anatomy\tX\t叉\t-\t0\t0.1\t-\t-\n' >> "$tmp/findings.tsv"
FVLM_SCHEMAS=$tmp expect_rc 1 "broken findings.tsv" "$bin" ontology
grep -q "findings.tsv:[0-9]*: task 'bogus_task' names unknown anatomy" /tmp/fvlm-cli-err.$$ \
    || fail "broken schema message: $(cat /tmp/fvlm-cli-err.$$)"
rm -rf "$tmp"

# ---- A small corpus: exit statuses that tell the truth, config rules, the
# key fingerprint, fvlm key / --accession, fvlm stats (about 5 s).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp" /tmp/fvlm-cli-out.$$ /tmp/fvlm-cli-err.$$' EXIT
err() { cat /tmp/fvlm-cli-err.$$; }
db=$tmp/c.db
export FVLM_DEID_KEY=cli-test-key-0123
"$bin" synth --out "$tmp/s" --studies 3 --seed 2 --size tiny --layout hospital --quiet >/dev/null \
    || fail "synth"
# The hospital named its archives by accession; here the first is named
# otherwise, the second by a patient's name, and a third archive of that name
# (another study) lies in another folder: the name then finds both.
truth=$tmp/s/truth/studies.jsonl
field() { sed -n "$1p" "$truth" | grep -o "\"$2\":\"[^\"]*\"" | head -1 | cut -d'"' -f4; }
acc1=$(field 1 accession); acc2=$(field 2 accession); acc3=$(field 3 accession)
a1=$(field 1 path); a2=$(field 2 path); a3=$(field 3 path)
b1=$(basename "$a1"); b2=$(basename "$a2"); b3=$(basename "$a3")
[ -n "$acc1" ] && [ -n "$acc2" ] && [ -n "$acc3" ] && [ -n "$a2" ] || fail "no accession in the synth truth"
mv "$tmp/s/$a1" "$tmp/s/hospital/train/CT20231118002.${b1#*.}"
mv "$tmp/s/$a2" "$tmp/s/hospital/train/Zhang_San_0042.${b2#*.}"
mkdir "$tmp/s/hospital/train/more"
mv "$tmp/s/$a3" "$tmp/s/hospital/train/more/Zhang_San_0042.${b3#*.}"
mkdir "$tmp/empty"
expect_rc 1 "ingest of an empty folder" "$bin" ingest --db "$tmp/e.db" "$tmp/empty" --quiet
grep -q "no file found" /tmp/fvlm-cli-err.$$ || fail "ingest of nothing: $(err)"
expect_rc 1 "parse of a corpus without reports" "$bin" parse --db "$tmp/e.db" --quiet
grep -q "no report: run .fvlm ingest" /tmp/fvlm-cli-err.$$ || fail "parse of nothing: $(err)"
expect_rc 1 "align of a corpus without studies" "$bin" align --db "$tmp/e.db" --quiet
expect_rc 1 "export of an unaligned corpus" "$bin" export --db "$tmp/e.db" --format jsonl \
    --out "$tmp/x0" --quiet
grep -q "no aligned study" /tmp/fvlm-cli-err.$$ || fail "export of nothing: $(err)"
expect_rc 0 "ingest" "$bin" ingest --db "$db" "$tmp/s/hospital" --quiet

# The corpus took the first key's fingerprint; another key is refused.
FVLM_DEID_KEY=another-key-456789 expect_rc 1 "ingest with another key" \
    "$bin" ingest --db "$db" "$tmp/s/hospital" --quiet
grep -q "built with another de-identification key (fingerprint [0-9a-f]*\.\.\., this key" \
    /tmp/fvlm-cli-err.$$ || fail "another key message: $(err)"
grep -q "FVLM_DEID_KEY" /tmp/fvlm-cli-err.$$ || fail "another key message lacks the fix"
uid=$(grep -o '"study_id":"[^"]*"' "$tmp/s/truth/studies.jsonl" | head -1 | cut -d'"' -f4)
[ -n "$uid" ] || fail "no study id in the synth truth"
expect_rc 0 "fvlm key" "$bin" key --db "$db" "$uid"
grep -q "^$uid	[0-9a-f]\{64\}	[0-9][0-9]*	study_uid,study$" /tmp/fvlm-cli-out.$$ \
    || fail "key output: $(cat /tmp/fvlm-cli-out.$$)"
sid=$(cut -f3 /tmp/fvlm-cli-out.$$)
# What a user holds finds the study: the DICOM AccessionNumber, the
# archive's name (with or without extension and folders).
expect_rc 0 "fvlm key ACCESSION" "$bin" key --db "$db" "$acc1"
[ "$(cut -f3 /tmp/fvlm-cli-out.$$)" = "$sid" ] || fail "key of the accession: $(cat /tmp/fvlm-cli-out.$$)"
grep -q "	accession" /tmp/fvlm-cli-out.$$ || fail "key of the accession matched: $(cat /tmp/fvlm-cli-out.$$)"
expect_rc 0 "fvlm key ACCESSION of a renamed archive" "$bin" key --db "$db" "$acc2"
sid2=$(cut -f3 /tmp/fvlm-cli-out.$$)
[ -n "$sid2" ] && [ "$sid2" != "$sid" ] || fail "key of the second accession: $(cat /tmp/fvlm-cli-out.$$)"
expect_rc 0 "fvlm key ARCHIVE" "$bin" key --db "$db" "CT20231118002.${b1#*.}" \
    "hospital/train/CT20231118002.${b1#*.}" CT20231118002 " $acc2 "
[ "$(cut -f3- /tmp/fvlm-cli-out.$$ | sort -u)" = "$(printf '%s\tsource\n%s\taccession\n' "$sid" "$sid2" | sort)" ] || fail "key of the archive name, its path and stem, a spaced accession: $(cat /tmp/fvlm-cli-out.$$)"
expect_rc 0 "fvlm key of a name two archives share" "$bin" key --db "$db" Zhang_San_0042
[ "$(wc -l < /tmp/fvlm-cli-out.$$)" = 2 ] || fail "a shared name lists $(cat /tmp/fvlm-cli-out.$$)"
grep -q "	$sid2	source$" /tmp/fvlm-cli-out.$$ || fail "a shared name misses study $sid2"
sid3=$("$bin" key --db "$db" "$acc3" | cut -f3)
grep -q "	$sid3	source$" /tmp/fvlm-cli-out.$$ || fail "a shared name misses study $sid3"
expect_rc 1 "show --accession of a name two archives share" "$bin" show --db "$db" --accession Zhang_San_0042
grep -q "names 2 studies" /tmp/fvlm-cli-err.$$ || fail "ambiguous --accession: $(err)"
expect_rc 1 "fvlm key of an unknown accession" "$bin" key --db "$db" "$uid" no-such-accession
grep -q "^no-such-accession	-	-	-$" /tmp/fvlm-cli-out.$$ || fail "unknown accession line"
grep -q "no-such-accession: no study with this identifier" /tmp/fvlm-cli-err.$$ || fail "unknown accession: $(err)"
# Neither an accession nor an archive name is in the database file (or its log).
for f in "$db" "$db-wal"; do
    [ -f "$f" ] || continue
    for w in "$acc1" "$acc2" "$acc3" Zhang_San CT20231118002; do
        grep -q -a -F "$w" "$f" && fail "$f holds $w"
    done
done
FVLM_DEID_KEY=another-key-456789 expect_rc 1 "fvlm key with another key" "$bin" key --db "$db" "$uid"
expect_rc 2 "fvlm key without accession" "$bin" key --db "$db"
if command -v sqlite3 >/dev/null; then
    n=$(sqlite3 "$db" "SELECT count(*) FROM meta WHERE key = 'deid_fingerprint'")
    [ "$n" = 1 ] || fail "meta.deid_fingerprint rows: $n"
    sqlite3 "$db" "SELECT count(*) FROM sources WHERE path LIKE '%$uid%' OR member LIKE '%$uid%'" \
        | grep -qx 0 || fail "an accession reached sources"
fi

# align before parse: a stage not run is exit 1, saying what to run.
expect_rc 1 "align before parse" "$bin" align --db "$db" --quiet
grep -q "run .fvlm parse --db $db. first" /tmp/fvlm-cli-err.$$ || fail "align before parse: $(err)"

# Config: one file for every stage; a typo is exit 2 naming file, line, key
# and the section's keys.
printf '[deid]\nkey = env:FVLM_DEID_KEY\n[train]\nlr = 0.001\n[align]\nstatus_rule = impression\n' \
    > "$tmp/all.ini"
expect_rc 1 "parse --report of no report" "$bin" parse --db "$db" --report 999 --quiet
grep -q "1 of the 1 --report ids are not reports" /tmp/fvlm-cli-err.$$ || fail "parse --report 999: $(err)"
expect_rc 0 "parse with a shared config" "$bin" parse --db "$db" --config "$tmp/all.ini" --quiet
expect_rc 0 "align with a shared config" "$bin" align --db "$db" --config "$tmp/all.ini"
grep -q "unknown configuration" /tmp/fvlm-cli-err.$$ && fail "align warns about its own keys: $(err)"
printf '[align]\nstatus_rul = findings\n' > "$tmp/typo.ini"
expect_rc 2 "unknown key in a file" "$bin" align --db "$db" --config "$tmp/typo.ini"
grep -q "typo.ini:2: unknown key 'status_rul' in \[align\].*status_rule" /tmp/fvlm-cli-err.$$ \
    || fail "unknown key message: $(err)"
printf 'seed = 1\n[algin]\nsamples = x\n' > "$tmp/sect.ini"
expect_rc 2 "unknown section" "$bin" parse --db "$db" --config "$tmp/sect.ini"
grep -q "sect.ini:3: unknown section \[algin\]" /tmp/fvlm-cli-err.$$ || fail "unknown section: $(err)"
expect_rc 2 "--set typo" "$bin" align --db "$db" --set align.crop_margin=3
grep -q -- "--set: unknown key 'crop_margin' in \[align\].*crop_margin_mm" /tmp/fvlm-cli-err.$$ \
    || fail "--set typo message: $(err)"
expect_rc 2 "--set typo in train" "$bin" train --db "$db" --preset tiny --out "$tmp/m.st" \
    --set train.learning_rate=1

# show and export by accession.
expect_rc 0 "show --accession" "$bin" show --db "$db" --accession "$uid"
grep -q "^study $sid " /tmp/fvlm-cli-out.$$ || fail "show --accession shows another study"
expect_rc 0 "show --accession ACCESSION" "$bin" show --db "$db" --accession "$acc2"
grep -q "^study $sid2 " /tmp/fvlm-cli-out.$$ || fail "show --accession of the AccessionNumber"
expect_rc 1 "show --accession unknown" "$bin" show --db "$db" --accession nope
expect_rc 0 "export --accession" "$bin" export --db "$db" --format jsonl --out "$tmp/x1" \
    --accession "$acc1" --json
grep -q '"studies": 1,' /tmp/fvlm-cli-out.$$ || fail "export --accession: $(cat /tmp/fvlm-cli-out.$$)"

# inspect: an unreadable file is exit 1 with the error on stderr.
printf 'garbage' > "$tmp/bad.nii"
expect_rc 1 "inspect of an unreadable file" "$bin" inspect "$tmp/bad.nii"
grep -q "bad.nii: .*shorter than a NIfTI header" /tmp/fvlm-cli-err.$$ || fail "inspect error: $(err)"
grep -q '"error"' /tmp/fvlm-cli-out.$$ || fail "inspect no longer prints the JSON"
expect_rc 1 "inspect of an empty folder" "$bin" inspect "$tmp/empty"

# stats: every stage's runs; a study without its mask, and why.
expect_rc 0 "stats" "$bin" stats --db "$db"
grep -q "run [0-9]* align" /tmp/fvlm-cli-out.$$ || fail "stats lacks the align runs"
grep -q "run [0-9]* parse" /tmp/fvlm-cli-out.$$ || fail "stats lacks the parse runs"
if command -v sqlite3 >/dev/null; then
    sqlite3 "$db" "DELETE FROM regions WHERE study_id = $sid; DELETE FROM masks WHERE study_id = $sid;
                   UPDATE sources SET status = 'failed' WHERE study_id = $sid AND kind = 'mask'"
    expect_rc 0 "stats of an incomplete corpus" "$bin" stats --db "$db"
    grep -q "incomplete studies: 1" /tmp/fvlm-cli-out.$$ || fail "stats incomplete count"
    grep -q "study $sid .* without mask" /tmp/fvlm-cli-out.$$ || fail "stats names the study"
    grep -q "member .*(mask): failed" /tmp/fvlm-cli-out.$$ || fail "stats says why"
    expect_rc 0 "stats --json" "$bin" stats --db "$db" --json
    grep -q '"incomplete_total": 1' /tmp/fvlm-cli-out.$$ || fail "stats --json incomplete_total"
fi
rm -f /tmp/fvlm-cli-out.$$ /tmp/fvlm-cli-err.$$
[ "$fails" = 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "cli: all checks passed"
