#!/bin/sh
# `fvlm parse-text`: JSON on stdout with a top-level labels object, usage errors,
# hostile input (empty, invalid UTF-8, NUL bytes, 10 MB) never crashing.
set -u
bin=${FVLM_BIN:?FVLM_BIN is not set}
py=/usr/bin/python3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAILED: $*" >&2; fails=$((fails + 1)); }

json_check() { # file python-expression-over-d
    [ -x "$py" ] || return 0
    "$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if eval(sys.argv[2]) else 1)' "$1" "$2"
}

printf 'Findings: No pleural effusion. A 5 mm nodule in the right upper lobe.\n\nImpression: Nodule.' \
    | "$bin" parse-text > "$tmp/en.json" 2> "$tmp/err" || fail "English report: exit $?"
json_check "$tmp/en.json" 'd["labels"] == {"pleural_effusion": 0, "lung_nodule": 1} and d["language"] == "en" and len(d["sentences"]) == 3' \
    || fail "English report: unexpected JSON $(head -c 400 "$tmp/en.json")"
json_check "$tmp/en.json" 'all(s["text"] == s["text"].strip() for s in d["sentences"]) and d["sentences"][0]["section"] == "findings" and d["sentences"][2]["section"] == "impression"' \
    || fail "English report: sections or sentence texts"

printf '影像所见：双肺纹理清晰，未见胸腔积液。右肺上叶见一小结节。\n诊断意见：右肺上叶结节，考虑炎性结节可能。' \
    | "$bin" parse-text --compact > "$tmp/zh.json" || fail "Chinese report: exit $?"
[ "$(wc -l < "$tmp/zh.json")" -eq 1 ] || fail "--compact output is not one line"
json_check "$tmp/zh.json" 'd["language"] == "zh" and d["labels"]["lung_nodule"] == 1 and d["labels"]["pleural_effusion"] == 0' \
    || fail "Chinese report: unexpected JSON $(head -c 400 "$tmp/zh.json")"
# offsets are byte offsets into the input
printf '影像所见：双肺纹理清晰，未见胸腔积液。右肺上叶见一小结节。\n诊断意见：右肺上叶结节，考虑炎性结节可能。' > "$tmp/zh.txt"
if [ -x "$py" ]; then
    "$py" - "$tmp/zh.json" "$tmp/zh.txt" <<'PY' || fail "spans do not match the input bytes"
import json, sys
d = json.load(open(sys.argv[1]))
raw = open(sys.argv[2], 'rb').read()
for s in d["sentences"]:
    assert raw[s["start"]:s["end"]].decode() == s["text"], s
    for f in s["findings"] + s["mentions"]:
        assert raw[f["start"]:f["end"]].decode() == f["text"], f
PY
fi

# GB18030 and UTF-8 with a byte order mark are read as ingest reads them
if command -v iconv > /dev/null 2>&1; then
    iconv -f UTF-8 -t GB18030 < "$tmp/zh.txt" > "$tmp/zh.gb"
    "$bin" parse-text < "$tmp/zh.gb" > "$tmp/gb.json" 2> "$tmp/err" || fail "GB18030 report: exit $?"
    grep -q "read as gb18030" "$tmp/err" || fail "GB18030 report: no note of the encoding on stderr"
    grep -q "invalid UTF-8" "$tmp/err" && fail "GB18030 report: read as invalid UTF-8"
    json_check "$tmp/gb.json" 'd["labels"]["lung_nodule"] == 1 and d["labels"]["pleural_effusion"] == 0 and d["warnings"] == []' \
        || fail "GB18030 report: unexpected JSON $(head -c 400 "$tmp/gb.json")"
fi
{ printf '\357\273\277'; cat "$tmp/zh.txt"; } | "$bin" parse-text > "$tmp/bom.json" 2> "$tmp/err" \
    || fail "UTF-8 report with a BOM: exit $?"
json_check "$tmp/bom.json" 'd["labels"]["lung_nodule"] == 1 and d["sentences"][0]["text"].startswith("双肺")' \
    || fail "UTF-8 report with a BOM: unexpected JSON $(head -c 400 "$tmp/bom.json")"

: | "$bin" parse-text > "$tmp/empty.json" 2> "$tmp/err" || fail "empty input: exit $?"
grep -q "empty report" "$tmp/err" || fail "empty input: no warning on stderr"
json_check "$tmp/empty.json" 'd["labels"] == {} and d["sentences"] == []' || fail "empty input JSON"

printf 'No pleural \377\376 effusion.\000 Emphysema.' | "$bin" parse-text > "$tmp/bad.json" 2> "$tmp/err" \
    || fail "invalid UTF-8: exit $?"
grep -q "invalid UTF-8" "$tmp/err" || fail "invalid UTF-8: no warning"
grep -q "expected UTF-8" "$tmp/err" || fail "invalid UTF-8: the warning does not say which encodings are read"
json_check "$tmp/bad.json" 'd["labels"].get("emphysema") == 1' || fail "invalid UTF-8: labels"

"$py" -c 'import sys; sys.stdout.write("A 5 mm nodule in the right lung. " * 330000)' 2>/dev/null > "$tmp/big.txt" \
    || yes 'A 5 mm nodule in the right lung.' | head -c 10500000 > "$tmp/big.txt"
"$bin" parse-text --compact < "$tmp/big.txt" > "$tmp/big.json" || fail "10 MB report: exit $?"
tail -c 100 "$tmp/big.json" | grep -q '"labels":{"lung_nodule":1}}' || fail "10 MB report: labels"

echo x | "$bin" parse-text --lang fr > /dev/null 2>&1
[ $? -eq 2 ] || fail "--lang fr does not exit 2"
echo x | "$bin" parse-text extra > /dev/null 2>&1
[ $? -eq 2 ] || fail "an extra argument does not exit 2"
[ "$fails" = 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "parse-text: all checks passed"
