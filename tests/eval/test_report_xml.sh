#!/bin/sh
# The SVG and HTML that eval writes parse as XML and HTML (Python's parsers),
# and the HTML task table sorts in headless Chromium when it is installed.
set -u
[ -x /usr/bin/python3 ] || { echo "SKIP: /usr/bin/python3 is absent"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"${EVAL_REPORT_BIN:?}" "$dir" >/dev/null || { echo "FAILED: writing the report files" >&2; exit 1; }
/usr/bin/python3 "${FVLM_SOURCE_ROOT:?}/tests/eval/check_report_xml.py" "$dir"
rc=$?
[ $rc = 0 ] || exit $rc
# ... and its task table sorts in a real browser (skipped without Chromium).
/usr/bin/python3 "${FVLM_SOURCE_ROOT:?}/tests/eval/check_report_sort.py" "$dir/zero-shot.html"
rc=$?
[ $rc = 77 ] && exit 0
exit $rc
