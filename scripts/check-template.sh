#!/usr/bin/env bash
# Lints template.yaml with cfn-lint and `sam validate --lint`; fails on any finding. Then
# checks that events/sam-local-env.json (the `sam local --env-vars` file) names exactly
# the variables each function of the template declares: sam local ignores any other, and
# a declared one the file leaves out would keep its AWS value.
#
# Usage:
#   scripts/check-template.sh           lint only (no AWS account or credentials needed)
#   scripts/check-template.sh --build   lint, then `sam build` (compiles the arm64 bootstrap;
#                                       without the aarch64 Rust target, an x86_64 copy)
#   TEMPLATE=other.yaml scripts/check-template.sh   lint another file (used to test this script)
#   SAM_LOCAL_ENV=other.json scripts/check-template.sh   check another env-vars file
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

# Both values of OrderIntake: the template as it is (direct by default), and a copy whose
# default is queue, so the resources only that value creates are linted as deployed.
mkdir -p .aws-sam
queue_template=".aws-sam/template-intake-queue.yaml"
python3 - "$template" "$queue_template" <<'PY'
import re
import sys

source, target = sys.argv[1:]
text = open(source).read()
changed, count = re.subn(
    r"(\n  OrderIntake:\n    Type: String\n    Default: )direct\n", r"\1queue\n", text
)
if count != 1:
    sys.exit(f"{source}: no OrderIntake parameter defaulting to direct")
open(target, "w").write(changed)
PY
for linted in "$template" "$queue_template"; do
    # cfn-lint exits non-zero on errors, warnings and informational findings alike.
    log "cfn-lint $linted"
    cfn-lint "$linted"
    # sam validate --lint runs cfn-lint again through SAM's own translator version.
    log "sam validate --lint ($linted)"
    sam validate --lint --template "$linted"
done

env_vars="${SAM_LOCAL_ENV:-events/sam-local-env.json}"
log "$env_vars names what each function of $template declares"
# cfn-lint's own loader reads the short forms (!Ref, !Sub…), as the lint above did.
python3 - "$template" "$env_vars" <<'PY'
import json
import sys

from cfnlint.decode import decode

template_path, env_path = sys.argv[1:]
template, errors = decode(template_path)
if errors or template is None:
    sys.exit(f"cannot read {template_path}: {errors}")


def variables(properties):
    return set(((properties or {}).get("Environment") or {}).get("Variables") or {})


shared = variables((template.get("Globals") or {}).get("Function"))
declared = {
    name: shared | variables(resource.get("Properties"))
    for name, resource in (template.get("Resources") or {}).items()
    if resource.get("Type") == "AWS::Serverless::Function"
}
with open(env_path) as file:
    given = json.load(file)

problems = []
for name in sorted(set(given) - set(declared)):
    problems.append(f"{name} is not a function of {template_path}")
for name, names in sorted(declared.items()):
    if name not in given:
        problems.append(f"{name} is missing; it declares {', '.join(sorted(names))}")
        continue
    if not isinstance(given[name], dict):
        problems.append(f"{name} must be an object of variable names and values")
        continue
    missing = sorted(names - set(given[name]))
    extra = sorted(set(given[name]) - names)
    if missing:
        problems.append(
            f"{name} lacks {', '.join(missing)}: declared in {template_path}, "
            "so sam local would run with the value meant for AWS"
        )
    if extra:
        problems.append(
            f"{name} has {', '.join(extra)}: not declared for it in {template_path}, "
            "so sam local would ignore it"
        )
for problem in problems:
    print(f"check-template.sh: {env_path}: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

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
    for intake in queue direct; do
        log "sam build ($build_template, OrderIntake=$intake)"
        sam build --template "$build_template" --base-dir . --build-dir "$build_dir" \
            --parameter-overrides "OrderIntake=$intake"
    done
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
