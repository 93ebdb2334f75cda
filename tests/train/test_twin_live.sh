#!/bin/sh
# The PyTorch twin live: twin.py computes the expected loss, logits, features
# and gradients from fresh inputs with Debian's torch, and the C network must
# match them (test_twin against that folder). Skipped (77) without torch.
# usage: test_twin_live.sh TEST_TWIN_BINARY
set -u
py=/usr/bin/python3
[ -x "$py" ] && "$py" -c 'import torch, numpy' 2>/dev/null || { echo "skipped: no torch"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" "${FVLM_SOURCE_ROOT:?}/tests/train/twin.py" fixtures "$1" "$tmp" || exit 1
FVLM_TWIN_DIR=$tmp "$1"
