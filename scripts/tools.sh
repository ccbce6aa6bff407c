#!/usr/bin/env bash
# Installs the local tooling (moto_server, cargo-lambda, zig, cfn-lint, sam) into
# <repo>/.tools/venv from the pinned scripts/requirements-tools.txt.
#
# Usage:
#   scripts/tools.sh           install if needed; last stdout line is TOOLS_BIN=<dir>
#   scripts/tools.sh --check   same, then run each tool once to prove it works
#
#   export "$(scripts/tools.sh | tail -n1)" && export PATH="$TOOLS_BIN:$PATH"
#
# Logs go to stderr so the last stdout line stays machine-readable.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$repo/scripts/requirements-tools.txt"
venv="$repo/.tools/venv"
bin="$venv/bin"
# The stamp records which requirements the venv was built from, so reruns are instant.
stamp="$venv/.requirements.sha256"

log() { echo "tools.sh: $*" >&2; }

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"

if [[ -x "$bin/python" && "$want" == "$have" ]]; then
    log "up to date ($venv)"
else
    if ! "$bin/python" -c 'pass' 2>/dev/null; then
        log "creating virtualenv at $venv"
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
    log "installing $(basename "$requirements") (under a minute the first time)"
    start=$SECONDS
    "$bin/python" -m pip install --disable-pip-version-check --quiet --upgrade pip >&2
    "$bin/python" -m pip install --disable-pip-version-check --quiet -r "$requirements" >&2
    # Written last: an interrupted install is retried on the next run.
    echo "$want" > "$stamp"
    log "installed in $((SECONDS - start)) s"
fi

# Runs a tool once and logs its first output line, or its whole output when it fails.
check() {
    local out
    if ! out="$("$@" 2>&1)"; then
        log "FAILED: $*"
        echo "$out" >&2
        exit 1
    fi
    log "ok: $* -> $(head -n1 <<< "$out")"
}

if [[ "${1:-}" == "--check" ]]; then
    export PATH="$bin:$PATH" SAM_CLI_TELEMETRY=0
    check moto_server --help
    # A cargo plugin run directly expects its subcommand name first.
    check cargo-lambda lambda --version
    if command -v cargo > /dev/null; then check cargo lambda --version; fi
    check python -m ziglang version
    check cfn-lint --version
    check sam --version
fi

echo "TOOLS_BIN=$bin"
