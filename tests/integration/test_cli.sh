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
rm -rf "$tmp" /tmp/fvlm-cli-out.$$ /tmp/fvlm-cli-err.$$
[ "$fails" = 0 ] || { echo "$fails failures" >&2; exit 1; }
echo "cli: all checks passed"
