#!/usr/bin/env bash
# Builds the heavy-api image for linux/amd64 and pushes it to Amazon ECR.
# Usage and variables: ./push-to-ecr.sh --help. Step-by-step guide: docs/DEPLOY_ECS.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: AWS_ACCOUNT_ID=123456789012 AWS_REGION=us-east-1 ./push-to-ecr.sh [--dry-run]

Builds the image from ./Dockerfile for linux/amd64 and pushes it to
<AWS_ACCOUNT_ID>.dkr.ecr.<AWS_REGION>.amazonaws.com/<ECR_REPOSITORY> as :<IMAGE_TAG> and :latest,
creating the ECR repository first if it does not exist.

Environment:
  AWS_ACCOUNT_ID   required: the 12-digit AWS account that owns the registry
  AWS_REGION       required: the registry's region, e.g. us-east-1
  IMAGE_TAG        optional: the image tag [default: git rev-parse --short HEAD]
  ECR_REPOSITORY   optional: the repository name [default: heavy-api]
  AWS credentials come from the usual places (AWS_PROFILE, environment, SSO, instance role).

Options:
  --dry-run        print every command instead of running it (runs neither aws nor docker)
  -h, --help       show this help

Needs: aws (AWS CLI v2), docker (with BuildKit/buildx for --platform), git (for the default tag).
EOF
}

dry_run=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            printf 'error: unknown argument: %s\n\n' "$arg" >&2
            usage >&2
            exit 2
            ;;
    esac
done

missing=()
[[ -n "${AWS_ACCOUNT_ID:-}" ]] || missing+=(AWS_ACCOUNT_ID)
[[ -n "${AWS_REGION:-}" ]] || missing+=(AWS_REGION)
if ((${#missing[@]} > 0)); then
    printf 'error: required environment variable(s) not set: %s\n\n' "${missing[*]}" >&2
    usage >&2
    exit 2
fi
if [[ ! "$AWS_ACCOUNT_ID" =~ ^[0-9]{12}$ ]]; then
    printf 'error: AWS_ACCOUNT_ID must be 12 digits, got: %s\n' "$AWS_ACCOUNT_ID" >&2
    exit 2
fi
if [[ ! "$AWS_REGION" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]]; then
    printf 'error: AWS_REGION does not look like a region name (e.g. us-east-1): %s\n' "$AWS_REGION" >&2
    exit 2
fi

# The build context is the repository root, wherever the script is called from.
cd "$(dirname "$0")"

if [[ -z "${IMAGE_TAG:-}" ]]; then
    if ! IMAGE_TAG="$(git rev-parse --short HEAD 2>/dev/null)"; then
        printf 'error: IMAGE_TAG is not set and git rev-parse --short HEAD failed (not a git checkout?)\n' >&2
        exit 2
    fi
    # Only the files the image is built from matter (see .dockerignore).
    if [[ -n "$(git status --porcelain -- Dockerfile Cargo.toml Cargo.lock src 2>/dev/null)" ]]; then
        printf 'warning: Dockerfile, Cargo.* or src/ have uncommitted changes; the image tagged %s will contain them\n' "$IMAGE_TAG" >&2
    fi
fi
if [[ ! "$IMAGE_TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]]; then
    printf 'error: IMAGE_TAG is not a valid image tag: %s\n' "$IMAGE_TAG" >&2
    exit 2
fi
ECR_REPOSITORY="${ECR_REPOSITORY:-heavy-api}"

registry="${AWS_ACCOUNT_ID}.dkr.ecr.${AWS_REGION}.amazonaws.com"
remote="${registry}/${ECR_REPOSITORY}"
local_image="${ECR_REPOSITORY}:${IMAGE_TAG}"

# Prints a command, shell-quoted so it can be pasted into a shell.
show() {
    local line
    line="$(printf '%q ' "$@")"
    printf '%s\n' "${line% }"
}

# Prints the command in dry-run mode, runs it otherwise.
run() {
    if ((dry_run)); then
        show "$@"
    else
        "$@"
    fi
}

step() { printf '==> %s\n' "$*" >&2; }

step "log in to ${registry}"
if ((dry_run)); then
    printf 'aws ecr get-login-password --region %q | docker login --username AWS --password-stdin %q\n' \
        "$AWS_REGION" "$registry"
else
    aws ecr get-login-password --region "$AWS_REGION" |
        docker login --username AWS --password-stdin "$registry"
fi

step "make sure the repository ${ECR_REPOSITORY} exists"
create_repo=(aws ecr create-repository --region "$AWS_REGION" --repository-name "$ECR_REPOSITORY"
    --image-scanning-configuration scanOnPush=true --image-tag-mutability MUTABLE)
if ((dry_run)); then
    printf '%s || %s\n' \
        "$(show aws ecr describe-repositories --region "$AWS_REGION" --repository-names "$ECR_REPOSITORY")" \
        "$(show "${create_repo[@]}")"
elif describe_out="$(aws ecr describe-repositories --region "$AWS_REGION" \
    --repository-names "$ECR_REPOSITORY" 2>&1)"; then
    step "repository exists"
elif [[ "$describe_out" == *RepositoryNotFoundException* ]]; then
    step "repository not found: creating it"
    "${create_repo[@]}" >/dev/null
else
    printf '%s\n' "$describe_out" >&2
    printf 'error: aws ecr describe-repositories failed (see above)\n' >&2
    exit 1
fi

step "build ${local_image} for linux/amd64"
run docker build --platform linux/amd64 --file Dockerfile --tag "$local_image" .

step "tag and push ${remote}:${IMAGE_TAG} and ${remote}:latest"
for tag in "$IMAGE_TAG" latest; do
    run docker tag "$local_image" "${remote}:${tag}"
done
for tag in "$IMAGE_TAG" latest; do
    run docker push "${remote}:${tag}"
done

if ((dry_run)); then
    step "dry run: nothing was run"
else
    step "pushed"
fi
# The image URI for the task definitions (deploy/task-definition-*.json, "image").
printf 'IMAGE_URI=%s:%s\n' "$remote" "$IMAGE_TAG"
