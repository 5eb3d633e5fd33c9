#!/usr/bin/env bash
# Builds the heavy-api image (linux/amd64, linux/arm64 or both as one multi-arch manifest) and
# pushes it to Amazon ECR.
# Usage and variables: ./push-to-ecr.sh --help. Step-by-step guide: docs/DEPLOY_ECS.md.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: AWS_ACCOUNT_ID=123456789012 AWS_REGION=us-east-1 ./push-to-ecr.sh [options]

Builds the image from ./Dockerfile and pushes it to
<AWS_ACCOUNT_ID>.dkr.ecr.<region>.amazonaws.com/<ECR_REPOSITORY> (.amazonaws.com.cn in the China
regions cn-*) as :<IMAGE_TAG> and :latest, creating the ECR repository first if it does not exist.

One platform (the default, linux/amd64): docker build, docker tag, docker push.
Several platforms (--platforms linux/amd64,linux/arm64): one `docker buildx build --push` that
pushes a single multi-arch manifest list, so ECS on x86 and on Graviton (EC2 or Fargate) pull the
same tag and each gets its own architecture. The Dockerfile cross-compiles, so no emulation
(QEMU) is needed; buildx needs a builder that can export multi-platform images (the script
creates a docker-container builder named heavy-api unless BUILDX_BUILDER names one).

Options:
  --platforms LIST   comma-separated: linux/amd64, linux/arm64 or both [default: linux/amd64]
  --region REGION    the registry's region [default: $AWS_REGION, else $AWS_DEFAULT_REGION]
  --dry-run          print every command instead of running it (runs neither aws nor docker);
                     AWS_ACCOUNT_ID may then be unset: the commands show ACCOUNT_ID instead
  -h, --help         show this help

Environment:
  AWS_ACCOUNT_ID   required (except with --dry-run): the 12-digit account that owns the registry
  AWS_REGION, AWS_DEFAULT_REGION
                   the region when --region is not given, in this order
  IMAGE_TAG        optional: the image tag [default: git rev-parse --short HEAD]
  ECR_REPOSITORY   optional: the repository name [default: heavy-api]
  BUILDX_BUILDER   optional: the buildx builder for several platforms [default: heavy-api]
  AWS credentials come from the usual places (AWS_PROFILE, environment, SSO, instance role).

Needs: aws (AWS CLI v2), docker (with BuildKit; buildx for several platforms), git (default tag).
EOF
}

dry_run=0
platforms=linux/amd64
region=""
while (($# > 0)); do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --platforms | --region)
            if (($# < 2)) || [[ -z "$2" || "$2" == -* ]]; then
                printf 'error: %s needs a value\n\n' "$1" >&2
                usage >&2
                exit 2
            fi
            if [[ "$1" == --platforms ]]; then platforms="$2"; else region="$2"; fi
            shift
            ;;
        --platforms=*) platforms="${1#--platforms=}" ;;
        --region=*) region="${1#--region=}" ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            printf 'error: unknown argument: %s\n\n' "$1" >&2
            usage >&2
            exit 2
            ;;
    esac
    shift
done

# The region: --region, else AWS_REGION, else AWS_DEFAULT_REGION (as the AWS CLI reads them).
region="${region:-${AWS_REGION:-${AWS_DEFAULT_REGION:-}}}"

missing=()
if [[ -z "${AWS_ACCOUNT_ID:-}" ]] && ((!dry_run)); then
    missing+=(AWS_ACCOUNT_ID)
fi
[[ -n "$region" ]] || missing+=("AWS_REGION (or AWS_DEFAULT_REGION, or --region)")
if ((${#missing[@]} > 0)); then
    printf 'error: required environment variable(s) not set: %s\n\n' "${missing[*]}" >&2
    usage >&2
    exit 2
fi
account="${AWS_ACCOUNT_ID:-}"
if [[ -z "$account" ]]; then
    account=ACCOUNT_ID
    printf 'note: AWS_ACCOUNT_ID is not set; the commands below show the placeholder %s\n' "$account" >&2
elif [[ ! "$account" =~ ^[0-9]{12}$ ]]; then
    printf 'error: AWS_ACCOUNT_ID must be 12 digits, got: %s\n' "$account" >&2
    exit 2
fi
if [[ ! "$region" =~ ^[a-z]{2}(-[a-z]+)+-[0-9]+$ ]]; then
    printf 'error: the region does not look like a region name (e.g. us-east-1): %s\n' "$region" >&2
    exit 2
fi

# The platforms: the Dockerfile builds linux/amd64 and linux/arm64; each at most once.
platform_list=()
IFS=, read -r -a platform_list <<<"$platforms"
if ((${#platform_list[@]} == 0)) || [[ "$platforms" == ,* || "$platforms" == *, || "$platforms" == *,,* ]]; then
    printf 'error: --platforms has an empty platform: %s\n' "$platforms" >&2
    exit 2
fi
seen=","
for p in "${platform_list[@]}"; do
    case "$p" in
        linux/amd64 | linux/arm64) ;;
        *)
            printf 'error: unsupported platform %q: use linux/amd64, linux/arm64 or both (comma-separated)\n' "$p" >&2
            exit 2
            ;;
    esac
    if [[ "$seen" == *",$p,"* ]]; then
        printf 'error: platform %s given twice\n' "$p" >&2
        exit 2
    fi
    seen+="$p,"
done

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

# ECR's host: amazonaws.com, except in the China partition (cn-north-1, cn-northwest-1).
domain=amazonaws.com
[[ "$region" == cn-* ]] && domain=amazonaws.com.cn
registry="${account}.dkr.ecr.${region}.${domain}"
remote="${registry}/${ECR_REPOSITORY}"
local_image="${ECR_REPOSITORY}:${IMAGE_TAG}"

# Prints a command, shell-quoted so it can be pasted into a shell.
show() {
    local arg line=""
    for arg in "$@"; do
        if [[ "$arg" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
            line+="$arg "
        else
            line+="$(printf '%q' "$arg") "
        fi
    done
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
        "$region" "$registry"
else
    aws ecr get-login-password --region "$region" |
        docker login --username AWS --password-stdin "$registry"
fi

step "make sure the repository ${ECR_REPOSITORY} exists"
create_repo=(aws ecr create-repository --region "$region" --repository-name "$ECR_REPOSITORY"
    --image-scanning-configuration scanOnPush=true --image-tag-mutability MUTABLE)
if ((dry_run)); then
    printf '%s || %s\n' \
        "$(show aws ecr describe-repositories --region "$region" --repository-names "$ECR_REPOSITORY")" \
        "$(show "${create_repo[@]}")"
elif describe_out="$(aws ecr describe-repositories --region "$region" \
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

if ((${#platform_list[@]} == 1)); then
    step "build ${local_image} for ${platforms}"
    run docker build --platform "$platforms" --file Dockerfile --tag "$local_image" .

    step "tag and push ${remote}:${IMAGE_TAG} and ${remote}:latest"
    for tag in "$IMAGE_TAG" latest; do
        run docker tag "$local_image" "${remote}:${tag}"
    done
    for tag in "$IMAGE_TAG" latest; do
        run docker push "${remote}:${tag}"
    done
else
    # One build for every platform, pushed as one manifest list (no local image: the classic
    # docker image store cannot hold a multi-platform image).
    builder="${BUILDX_BUILDER:-heavy-api}"
    step "buildx builder ${builder} (docker-container driver: exports multi-platform images)"
    if ((dry_run)); then
        printf '%s >/dev/null 2>&1 || %s\n' "$(show docker buildx inspect "$builder")" \
            "$(show docker buildx create --name "$builder" --driver docker-container)"
    elif ! docker buildx inspect "$builder" >/dev/null 2>&1; then
        docker buildx create --name "$builder" --driver docker-container >/dev/null
    fi

    step "build for ${platforms}; push one multi-arch manifest as ${remote}:${IMAGE_TAG} and :latest"
    run docker buildx build --builder "$builder" --platform "$platforms" --file Dockerfile \
        --tag "${remote}:${IMAGE_TAG}" --tag "${remote}:latest" --push .

    step "the pushed manifest list: one image per platform"
    run docker buildx imagetools inspect "${remote}:${IMAGE_TAG}"
fi

if ((dry_run)); then
    step "dry run: nothing was run"
else
    step "pushed"
fi
# The image URI for the task definitions (deploy/task-definition-*.json, "image").
printf 'IMAGE_URI=%s:%s\n' "$remote" "$IMAGE_TAG"
