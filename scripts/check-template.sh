#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and `sam validate --lint`; fails on any finding.
#
# Usage:
#   scripts/check-template.sh           lint only (no AWS account or credentials needed)
#   scripts/check-template.sh --build   lint, then `sam build` (compiles the arm64 bootstrap;
#                                       without the aarch64 Rust target, an x86_64 copy)
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
    # cargo-lambda cross-links with the zig from the same venv. That needs the aarch64 std
    # (`rustup target add aarch64-unknown-linux-gnu`). Where it cannot be had (no rustup
    # download server), the same template is built for x86_64 instead: same build method,
    # binary and packaging, so only the cross-compilation step goes unchecked.
    build_template="$template"
    build_dir=".aws-sam/build"
    if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/aarch64-unknown-linux-gnu/lib" ]]; then
        log "WARNING: no aarch64-unknown-linux-gnu Rust target here; building an x86_64 copy"
        mkdir -p .aws-sam
        build_template=".aws-sam/template-x86_64.yaml"
        build_dir=".aws-sam/build-x86_64"
        sed 's/Architectures: \[arm64\]/Architectures: [x86_64]/' "$template" >"$build_template"
        grep -q 'Architectures: \[x86_64\]' "$build_template"
    fi
    log "sam build ($build_template)"
    sam build --template "$build_template" --base-dir . --build-dir "$build_dir"
    for function in InventoryFunction AvailabilityFunction; do
        bootstrap="$build_dir/$function/bootstrap"
        # The artefact is our binary: it says its name, and started as Lambda would start
        # it but without configuration, it names what is missing.
        version="$(env -i "$bootstrap" --version 2>&1 || true)"
        said="$(env -i AWS_LAMBDA_RUNTIME_API=127.0.0.1:9 "$bootstrap" 2>&1 || true)"
        if ! grep -q "^aeronode-inventory " <<<"$version" || ! grep -q "DB_HOST is not set" <<<"$said"; then
            log "$bootstrap is not the service's binary"
            exit 1
        fi
        log "built $bootstrap ($(stat -c %s "$bootstrap") bytes): $version"
    done
fi
log "ok"
