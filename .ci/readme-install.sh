#!/usr/bin/env bash
# Runs the README's Install block as written (it installs `muster` into ~/.cargo/bin
# and completions and a man page under ~/.local/share), then checks what it left.
# Builds into the workspace's target dir so later steps reuse the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
block=$(awk '/^## Install/{inside=1} inside && /^```sh/{grab=1; next} grab && /^```/{exit} grab{print}' README.md)
[ -n "$block" ] || { echo "readme-install: no sh block under ## Install" >&2; exit 1; }
echo "readme-install: running the README's Install block:" >&2
printf '%s\n' "$block" >&2
bash -euo pipefail -c "$block"
grep -q '_muster()' ~/.local/share/bash-completion/completions/muster
grep -q '^\.TH muster 1' ~/.local/share/man/man1/muster.1
muster --version | grep -q 'protocol v'
echo "readme-install: 1 passed, 0 failed"
