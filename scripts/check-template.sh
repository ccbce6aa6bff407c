#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and `sam validate --lint`; fails on any finding.
#
# Usage:
#   scripts/check-template.sh           lint only (no AWS account or credentials needed)
#   scripts/check-template.sh --build   lint, then `sam build` (compiles the arm64 bootstrap)
#   TEMPLATE=other.yaml scripts/check-template.sh   lint another file (used to test this script)
set -euo pipefail

case "${1:-}" in
    "" | --build) ;;
    *) echo "usage: scripts/check-template.sh [--build]" >&2; exit 2 ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

tools_bin="$(bash scripts/tools.sh | tail -n1)"
export PATH="${tools_bin#TOOLS_BIN=}:$PATH"
# sam wants a region even to validate offline; telemetry would try the network.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-eu-west-1}" SAM_CLI_TELEMETRY=0

template="${TEMPLATE:-template.yaml}"

log() { echo "check-template.sh: $*" >&2; }

# cfn-lint exits non-zero on errors, warnings and informational findings alike.
log "cfn-lint $template"
cfn-lint "$template"
# sam validate --lint runs cfn-lint again through SAM's own translator version.
log "sam validate --lint"
sam validate --lint --template "$template"

if [[ "${1:-}" == "--build" ]]; then
    # The rust-cargolambda build method runs `cargo lambda build --release --arm64`;
    # cargo-lambda cross-links with the zig from the same venv.
    log "sam build"
    sam build --template "$template"
fi
log "ok"
