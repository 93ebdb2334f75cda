#!/bin/sh
# Every configuration key the code reads is in lib/config.c's table of known
# keys: a key missing there is refused as a typo by every command (exit 2),
# so the setting would be unusable (train.loaders was, once). The keys are
# the string literals the sources pass to config_str/int/double/doubles.
set -u
bin=${FVLM_BIN:?FVLM_BIN is not set}
root=${FVLM_SOURCE_ROOT:?FVLM_SOURCE_ROOT is not set}
keys=$(cd "$root" && grep -rhoE 'config_(str|int|double|doubles)\([^,()]*, *"[a-z_]+(\.[a-z_0-9]+)?"' \
        lib ingest parse align train eval audit tools synth 2>/dev/null |
       sed -E 's/.*"([^"]+)"$/\1/' | sort -u)
[ -n "$keys" ] || { echo "FAILED: no configuration key found in the sources" >&2; exit 1; }
fails=0
n=0
for k in $keys; do
    n=$((n + 1))
    # parse reads the config before it opens the database: a known key gets
    # as far as the missing database (exit 1), an unknown one stops at 2.
    "$bin" parse --db /nonexistent/fvlm-config-keys.db --set "$k=1" >/dev/null 2>/tmp/fvlm-keys.$$
    rc=$?
    if [ "$rc" = 2 ]; then
        echo "FAILED: the code reads '$k' but the table of known keys refuses it: $(cat /tmp/fvlm-keys.$$)" >&2
        fails=$((fails + 1))
    fi
done
rm -f /tmp/fvlm-keys.$$
# ... and the check itself refuses a typo.
"$bin" parse --db /nonexistent/fvlm-config-keys.db --set train.lrr=1 >/dev/null 2>&1
[ $? = 2 ] || { echo "FAILED: a mistyped key was not refused" >&2; fails=$((fails + 1)); }
[ "$fails" = 0 ] || exit 1
echo "config keys: all $n keys the code reads are known"
