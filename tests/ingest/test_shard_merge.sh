#!/bin/sh
# Ingest on every core, in shards, and merge: --jobs 1 and --jobs 2 store the
# same rows and tensor files; `fvlm ingest --shard K/3` of a synthetic corpus
# (hospital archives and CT-RATE files, whose studies span units) three times,
# `fvlm merge`, then parse and align, give the same studies (keyed ids, splits,
# patients), volumes, masks, reports, tensor files, members, labels and anatomy
# statuses as one ingest of everything. A shard refuses parse, align and another
# shard's ingest; merge refuses a shard given twice, a parsed input, another
# de-identification key and another schema version.
# usage: test_shard_merge.sh   (FVLM_BIN: the fvlm binary; sqlite3 on PATH)
set -u
bin=${FVLM_BIN:?FVLM_BIN is not set}
command -v sqlite3 >/dev/null || { echo "sqlite3 not installed: skipped"; exit 77; }
fails=0
fail() { echo "FAILED: $*" >&2; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1
export FVLM_DEID_KEY=test-shard-merge-key-0123456789

"$bin" synth --out syn --studies 8 --seed 2 --layout both --size tiny --quiet >/dev/null ||
    { echo "FAILED: synth" >&2; exit 1; }
"$bin" ingest --db whole.db --jobs 2 --quiet syn/hospital syn/ctrate >/dev/null ||
    fail "ingest of everything"
"$bin" ingest --db one.db --jobs 1 --quiet syn/hospital syn/ctrate >/dev/null ||
    fail "ingest of everything on 1 thread"
for k in 0 1 2; do
    "$bin" ingest --db s$k.db --shard $k/3 --quiet syn/hospital syn/ctrate >/dev/null ||
        fail "ingest --shard $k/3"
done
n0=$(sqlite3 s0.db "SELECT COUNT(*) FROM studies")
n1=$(sqlite3 s1.db "SELECT COUNT(*) FROM studies")
n2=$(sqlite3 s2.db "SELECT COUNT(*) FROM studies")
[ $((n0 + n1 + n2)) = 8 ] || fail "the shards hold $n0 + $n1 + $n2 studies, not 8"
"$bin" merge --db all.db s0.db s1.db s2.db --quiet >/dev/null || fail "merge"

rows() {
    sqlite3 "$1" "SELECT s.study_key, s.split, s.dataset, s.patient_key, v.sha256, v.shard,
        v.nz, v.ny, v.nx, m.shard, m.sha256, r.sha256, r.text FROM studies s
        LEFT JOIN volumes v ON v.study_id = s.id LEFT JOIN masks m ON m.study_id = s.id
        LEFT JOIN reports r ON r.study_id = s.id ORDER BY s.study_key" | sha256sum
}
[ "$(rows whole.db)" = "$(rows all.db)" ] ||
    fail "studies, volumes, masks or reports differ between one ingest and the merged shards"
ids() { sqlite3 "$1" "SELECT s.study_key, i.kind, i.id_hash FROM study_ids i JOIN studies s
    ON s.id = i.study_id ORDER BY 1, 2, 3" | sha256sum; }
[ "$(sqlite3 all.db "SELECT COUNT(*) FROM study_ids")" -gt 8 ] || fail "the merged corpus lacks study_ids"
[ "$(ids whole.db)" = "$(ids all.db)" ] || fail "the identifiers' hashes (study_ids) differ"
src() { sqlite3 "$1" "SELECT sha256, kind, status, path, member FROM sources ORDER BY 1, 2, 4, 5" | sha256sum; }
[ "$(src whole.db)" = "$(src all.db)" ] || fail "the members (sources) differ"
[ "$(rows whole.db)" = "$(rows one.db)" ] && [ "$(src whole.db)" = "$(src one.db)" ] ||
    fail "--jobs 1 and --jobs 2 stored different rows"
for f in whole.db.tensors/*; do
    cmp -s "$f" "one.db.tensors/$(basename "$f")" || fail "tensor $f differs with --jobs 1"
done
[ "$(ls whole.db.tensors | sort)" = "$(ls all.db.tensors | sort)" ] || fail "the tensor files differ"
for f in all.db.tensors/*; do
    cmp -s "$f" "whole.db.tensors/$(basename "$f")" || fail "tensor $f differs"
done

for d in whole all; do
    "$bin" parse --db $d.db --quiet >/dev/null || fail "parse $d"
    "$bin" align --db $d.db --quiet >/dev/null || fail "align $d"
done
lab() { sqlite3 "$1" "SELECT s.study_key, l.task, l.value FROM labels l JOIN studies s ON s.id = l.study_id ORDER BY 1, 2" | sha256sum; }
st() { sqlite3 "$1" "SELECT s.study_key, a.anatomy, a.status FROM anatomy_status a JOIN studies s ON s.id = a.study_id ORDER BY 1, 2" | sha256sum; }
[ -n "$(sqlite3 all.db 'SELECT 1 FROM labels LIMIT 1')" ] || fail "the merged corpus has no labels"
[ "$(lab whole.db)" = "$(lab all.db)" ] || fail "labels differ"
[ "$(st whole.db)" = "$(st all.db)" ] || fail "anatomy statuses differ"

# refusals, each exit 1 with a message that says why
refuse() { # WHAT PATTERN COMMAND...
    what=$1 pat=$2
    shift 2
    "$@" >/dev/null 2>err
    rc=$?
    [ "$rc" = 1 ] && grep -q "$pat" err || fail "$what: exit $rc: $(cat err)"
}
refuse "parse on a shard" "merged corpus" "$bin" parse --db s0.db
refuse "align on a shard" "merged corpus" "$bin" align --db s0.db
refuse "another shard into a shard" "not 1/3" "$bin" ingest --db s0.db --shard 1/3 syn/hospital
refuse "a shard given twice" "given twice" "$bin" merge --db twice.db s0.db s0.db
refuse "a parsed input" "parse" "$bin" merge --db parsed.db whole.db
cp s1.db key.db && cp -r s1.db.tensors key.db.tensors
sqlite3 all.db "INSERT OR REPLACE INTO meta (key, value) VALUES ('deid_fingerprint', 'aaaa')"
sqlite3 key.db "INSERT OR REPLACE INTO meta (key, value) VALUES ('deid_fingerprint', 'bbbb')"
refuse "another de-identification key" "another key" "$bin" merge --db all.db key.db
cp s2.db old.db && cp -r s2.db.tensors old.db.tensors
sqlite3 old.db "PRAGMA user_version = 2"
refuse "another schema version" "schema version" "$bin" merge --db old2.db old.db

[ "$fails" = 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "shard and merge: all checks passed"
