#!/usr/bin/env bash
# Tests push-to-ecr.sh without AWS or Docker: stub `aws` and `docker` executables, first on PATH,
# log their argv (one line per call) and play the registry's part. Checks the real run's command
# sequence (with and without an existing repository), the multi-arch push (one buildx build with
# --push), --dry-run (prints, calls nothing, needs no account id), the region's sources and the
# China registry host, the usage errors, and that a failing step stops the script. Exit 0 when
# every case passes.
set -euo pipefail
cd "$(dirname "$0")/.."

script=./push-to-ecr.sh
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
stubs="$tmp/bin"
log="$tmp/calls.log"
mkdir -p "$stubs"

# aws: get-login-password prints a token; describe-repositories fails like the real CLI unless
# STUB_REPO_EXISTS=1 (or with another error if STUB_DESCRIBE_ERROR is set).
cat >"$stubs/aws" <<'EOF'
#!/usr/bin/env bash
printf 'aws %s\n' "$*" >>"$STUB_LOG"
case "$1 $2" in
    "ecr get-login-password") printf 'stub-ecr-token\n' ;;
    "ecr describe-repositories")
        if [[ -n "${STUB_DESCRIBE_ERROR:-}" ]]; then
            printf '\nAn error occurred (%s) when calling the DescribeRepositories operation: no\n' \
                "$STUB_DESCRIBE_ERROR" >&2
            exit 254
        fi
        if [[ "${STUB_REPO_EXISTS:-0}" != 1 ]]; then
            printf '\nAn error occurred (RepositoryNotFoundException) when calling the DescribeRepositories operation: The repository with name %s does not exist\n' "$6" >&2
            exit 254
        fi
        printf '{"repositories": []}\n'
        ;;
    "ecr create-repository") printf '{"repository": {}}\n' ;;
    *) printf 'stub aws: unexpected call: %s\n' "$*" >&2; exit 1 ;;
esac
EOF

# docker: login must get the token on stdin; push fails if STUB_PUSH_FAILS=1; `buildx inspect`
# fails (no such builder) unless STUB_BUILDER_EXISTS=1; `buildx build` fails if STUB_BUILDX_FAILS=1.
cat >"$stubs/docker" <<'EOF'
#!/usr/bin/env bash
if [[ "$1" == login ]]; then
    password="$(cat)"
    printf 'docker %s <<< %s\n' "$*" "$password" >>"$STUB_LOG"
    [[ "$password" == stub-ecr-token ]] || { echo "stub docker: wrong password" >&2; exit 1; }
    echo "Login Succeeded"
    exit 0
fi
printf 'docker %s\n' "$*" >>"$STUB_LOG"
if [[ "$1" == push && "${STUB_PUSH_FAILS:-0}" == 1 ]]; then
    echo "stub docker: push denied" >&2
    exit 1
fi
if [[ "$1 $2" == "buildx inspect" && "${STUB_BUILDER_EXISTS:-0}" != 1 ]]; then
    echo "ERROR: no builder \"$3\" found" >&2
    exit 1
fi
if [[ "$1 $2" == "buildx build" && "${STUB_BUILDX_FAILS:-0}" == 1 ]]; then
    echo "stub docker: buildx build failed" >&2
    exit 1
fi
EOF
chmod +x "$stubs/aws" "$stubs/docker"

export PATH="$stubs:$PATH" STUB_LOG="$log"
unset AWS_ACCOUNT_ID AWS_REGION AWS_DEFAULT_REGION IMAGE_TAG ECR_REPOSITORY BUILDX_BUILDER \
    STUB_REPO_EXISTS STUB_DESCRIBE_ERROR STUB_PUSH_FAILS STUB_BUILDER_EXISTS STUB_BUILDX_FAILS

passed=0
failed=0
out="$tmp/out"
err="$tmp/err"
pass() {
    printf '  ok: %s\n' "$1"
    passed=$((passed + 1))
}
fail() {
    printf '  FAIL: %s\n' "$1"
    for f in "$log" "$out" "$err"; do
        [[ -s "$f" ]] && sed "s|^|    $(basename "$f"): |" "$f"
    done
    failed=$((failed + 1))
}
# Runs push-to-ecr.sh with a fresh call log; sets $rc.
push() {
    : >"$log"
    rc=0
    "$script" "$@" >"$out" 2>"$err" || rc=$?
}
expect_calls() { # name, expected lines
    local name="$1"
    shift
    if [[ "$rc" -eq 0 ]] && diff <(printf '%s\n' "$@") "$log" >"$tmp/diff"; then
        pass "$name"
    else
        cat "$tmp/diff"
        fail "$name (exit $rc)"
    fi
}

account=123456789012
region=eu-west-1
registry="$account.dkr.ecr.$region.amazonaws.com"
head_tag="$(git rev-parse --short HEAD)"

echo "push-to-ecr.sh with stub aws/docker:"

# 1. A real run, repository missing, IMAGE_TAG from git.
AWS_ACCOUNT_ID=$account AWS_REGION=$region push
expect_calls "real run creates the missing repository, builds for linux/amd64, tags and pushes (tag = git HEAD)" \
    "aws ecr get-login-password --region $region" \
    "docker login --username AWS --password-stdin $registry <<< stub-ecr-token" \
    "aws ecr describe-repositories --region $region --repository-names heavy-api" \
    "aws ecr create-repository --region $region --repository-name heavy-api --image-scanning-configuration scanOnPush=true --image-tag-mutability MUTABLE" \
    "docker build --platform linux/amd64 --file Dockerfile --tag heavy-api:$head_tag ." \
    "docker tag heavy-api:$head_tag $registry/heavy-api:$head_tag" \
    "docker tag heavy-api:$head_tag $registry/heavy-api:latest" \
    "docker push $registry/heavy-api:$head_tag" \
    "docker push $registry/heavy-api:latest"
if grep -qx "IMAGE_URI=$registry/heavy-api:$head_tag" "$out"; then
    pass "prints the IMAGE_URI for the task definitions"
else
    fail "prints the IMAGE_URI for the task definitions"
fi

# 2. Repository exists; explicit IMAGE_TAG and ECR_REPOSITORY.
STUB_REPO_EXISTS=1 AWS_ACCOUNT_ID=$account AWS_REGION=$region IMAGE_TAG=v1.2.3 \
    ECR_REPOSITORY=team/heavy push
expect_calls "existing repository is not re-created; IMAGE_TAG and ECR_REPOSITORY are honoured" \
    "aws ecr get-login-password --region $region" \
    "docker login --username AWS --password-stdin $registry <<< stub-ecr-token" \
    "aws ecr describe-repositories --region $region --repository-names team/heavy" \
    "docker build --platform linux/amd64 --file Dockerfile --tag team/heavy:v1.2.3 ." \
    "docker tag team/heavy:v1.2.3 $registry/team/heavy:v1.2.3" \
    "docker tag team/heavy:v1.2.3 $registry/team/heavy:latest" \
    "docker push $registry/team/heavy:v1.2.3" \
    "docker push $registry/team/heavy:latest"

# 3. --dry-run prints every command and calls nothing.
AWS_ACCOUNT_ID=$account AWS_REGION=$region IMAGE_TAG=abc1234 push --dry-run
if [[ "$rc" -eq 0 && ! -s "$log" ]] &&
    grep -qF "aws ecr get-login-password --region $region | docker login --username AWS --password-stdin $registry" "$out" &&
    grep -qF "aws ecr describe-repositories --region $region --repository-names heavy-api || aws ecr create-repository" "$out" &&
    grep -qF "docker build --platform linux/amd64 --file Dockerfile --tag heavy-api:abc1234 ." "$out" &&
    grep -qF "docker tag heavy-api:abc1234 $registry/heavy-api:latest" "$out" &&
    grep -qF "docker push $registry/heavy-api:abc1234" "$out" &&
    grep -qF "docker push $registry/heavy-api:latest" "$out"; then
    pass "--dry-run prints login, describe||create, build, tag and push, and runs neither aws nor docker"
else
    fail "--dry-run (exit $rc)"
fi

# 4. Usage errors: exit 2, a message naming the variable, nothing called.
for missing in AWS_ACCOUNT_ID AWS_REGION; do
    if [[ "$missing" == AWS_ACCOUNT_ID ]]; then
        AWS_REGION=$region push
    else
        AWS_ACCOUNT_ID=$account push
    fi
    if [[ "$rc" -eq 2 && ! -s "$log" ]] && grep -q "not set: $missing" "$err" && grep -q '^Usage:' "$err"; then
        pass "without $missing: usage error naming it, exit 2, nothing run"
    else
        fail "without $missing (exit $rc)"
    fi
done
AWS_ACCOUNT_ID=12345 AWS_REGION=$region push
if [[ "$rc" -eq 2 && ! -s "$log" ]] && grep -q "12 digits" "$err"; then
    pass "a malformed AWS_ACCOUNT_ID is refused (exit 2)"
else
    fail "malformed AWS_ACCOUNT_ID (exit $rc)"
fi
AWS_ACCOUNT_ID=$account AWS_REGION=$region push --bogus
if [[ "$rc" -eq 2 && ! -s "$log" ]] && grep -q "unknown argument: --bogus" "$err"; then
    pass "an unknown argument is refused (exit 2)"
else
    fail "unknown argument (exit $rc)"
fi
push --help
if [[ "$rc" -eq 0 && ! -s "$log" ]] && grep -q '^Usage:' "$out" && grep -q -- '--dry-run' "$out"; then
    pass "--help prints the usage and exits 0"
else
    fail "--help (exit $rc)"
fi

# 5. Failures stop the script.
STUB_DESCRIBE_ERROR=AccessDeniedException AWS_ACCOUNT_ID=$account AWS_REGION=$region push
if [[ "$rc" -ne 0 ]] && ! grep -q create-repository "$log" && ! grep -q 'docker build' "$log" &&
    grep -q AccessDeniedException "$err"; then
    pass "a describe-repositories error other than not-found stops before create/build (exit $rc)"
else
    fail "describe-repositories access error (exit $rc)"
fi
STUB_PUSH_FAILS=1 STUB_REPO_EXISTS=1 AWS_ACCOUNT_ID=$account AWS_REGION=$region push
if [[ "$rc" -ne 0 ]] && [[ "$(grep -c '^docker push' "$log")" -eq 1 ]] && ! grep -q '^IMAGE_URI=' "$out"; then
    pass "a failed push stops the script with a non-zero exit (exit $rc)"
else
    fail "failed push (exit $rc)"
fi

# 6. Multi-arch: one buildx build for both platforms that pushes one manifest list; no docker
#    build/tag/push of single-platform images.
multi=linux/amd64,linux/arm64
AWS_ACCOUNT_ID=$account AWS_REGION=$region IMAGE_TAG=v2 push --platforms "$multi"
expect_calls "--platforms $multi: one docker buildx build --platform $multi --push (a new builder is created)" \
    "aws ecr get-login-password --region $region" \
    "docker login --username AWS --password-stdin $registry <<< stub-ecr-token" \
    "aws ecr describe-repositories --region $region --repository-names heavy-api" \
    "aws ecr create-repository --region $region --repository-name heavy-api --image-scanning-configuration scanOnPush=true --image-tag-mutability MUTABLE" \
    "docker buildx inspect heavy-api" \
    "docker buildx create --name heavy-api --driver docker-container" \
    "docker buildx build --builder heavy-api --platform $multi --file Dockerfile --tag $registry/heavy-api:v2 --tag $registry/heavy-api:latest --push ." \
    "docker buildx imagetools inspect $registry/heavy-api:v2"
if grep -qx "IMAGE_URI=$registry/heavy-api:v2" "$out"; then
    pass "multi-arch run prints the IMAGE_URI (one tag for every architecture)"
else
    fail "multi-arch IMAGE_URI"
fi

STUB_BUILDER_EXISTS=1 STUB_REPO_EXISTS=1 BUILDX_BUILDER=ci AWS_ACCOUNT_ID=$account \
    AWS_REGION=$region IMAGE_TAG=v2 push --platforms=linux/arm64,linux/amd64
expect_calls "an existing BUILDX_BUILDER is used, not re-created; the platform order is kept" \
    "aws ecr get-login-password --region $region" \
    "docker login --username AWS --password-stdin $registry <<< stub-ecr-token" \
    "aws ecr describe-repositories --region $region --repository-names heavy-api" \
    "docker buildx inspect ci" \
    "docker buildx build --builder ci --platform linux/arm64,linux/amd64 --file Dockerfile --tag $registry/heavy-api:v2 --tag $registry/heavy-api:latest --push ." \
    "docker buildx imagetools inspect $registry/heavy-api:v2"

AWS_ACCOUNT_ID=$account AWS_REGION=$region IMAGE_TAG=v3 push --platforms linux/arm64
expect_calls "--platforms linux/arm64 alone: docker build --platform linux/arm64, tag, push" \
    "aws ecr get-login-password --region $region" \
    "docker login --username AWS --password-stdin $registry <<< stub-ecr-token" \
    "aws ecr describe-repositories --region $region --repository-names heavy-api" \
    "aws ecr create-repository --region $region --repository-name heavy-api --image-scanning-configuration scanOnPush=true --image-tag-mutability MUTABLE" \
    "docker build --platform linux/arm64 --file Dockerfile --tag heavy-api:v3 ." \
    "docker tag heavy-api:v3 $registry/heavy-api:v3" \
    "docker tag heavy-api:v3 $registry/heavy-api:latest" \
    "docker push $registry/heavy-api:v3" \
    "docker push $registry/heavy-api:latest"

# 7. --dry-run of the multi-arch push, without an account id: the placeholder, one buildx build
#    with --push, no docker push, nothing run.
AWS_REGION=$region IMAGE_TAG=abc1234 push --dry-run --platforms "$multi"
placeholder="ACCOUNT_ID.dkr.ecr.$region.amazonaws.com"
if [[ "$rc" -eq 0 && ! -s "$log" ]] &&
    [[ "$(grep -c 'docker buildx build' "$out")" -eq 1 ]] &&
    grep -qxF "docker buildx build --builder heavy-api --platform $multi --file Dockerfile --tag $placeholder/heavy-api:abc1234 --tag $placeholder/heavy-api:latest --push ." "$out" &&
    grep -qF "docker login --username AWS --password-stdin $placeholder" "$out" &&
    ! grep -q '^docker push\|^docker tag\|^docker build ' "$out" &&
    grep -q 'placeholder ACCOUNT_ID' "$err"; then
    pass "--dry-run --platforms $multi without AWS_ACCOUNT_ID: one buildx build --push with the placeholder account, nothing run"
else
    fail "--dry-run multi-arch without account id (exit $rc)"
fi

# 8. The region: --region > AWS_REGION > AWS_DEFAULT_REGION; China regions use amazonaws.com.cn.
AWS_DEFAULT_REGION=ap-south-1 IMAGE_TAG=t push --dry-run
if [[ "$rc" -eq 0 ]] && grep -qF "get-login-password --region ap-south-1 | docker login --username AWS --password-stdin ACCOUNT_ID.dkr.ecr.ap-south-1.amazonaws.com" "$out"; then
    pass "AWS_DEFAULT_REGION is used when AWS_REGION is unset"
else
    fail "AWS_DEFAULT_REGION (exit $rc)"
fi
AWS_REGION=eu-north-1 AWS_DEFAULT_REGION=ap-south-1 IMAGE_TAG=t push --dry-run
if [[ "$rc" -eq 0 ]] && grep -qF -- "--region eu-north-1 |" "$out" && ! grep -q ap-south-1 "$out"; then
    pass "AWS_REGION wins over AWS_DEFAULT_REGION"
else
    fail "AWS_REGION over AWS_DEFAULT_REGION (exit $rc)"
fi
AWS_REGION=eu-north-1 AWS_DEFAULT_REGION=ap-south-1 IMAGE_TAG=t push --dry-run --region sa-east-1
if [[ "$rc" -eq 0 ]] && grep -qF -- "--region sa-east-1 |" "$out" && ! grep -q 'eu-north-1\|ap-south-1' "$out"; then
    pass "--region wins over both variables"
else
    fail "--region (exit $rc)"
fi
cn_registry="$account.dkr.ecr.cn-northwest-1.amazonaws.com.cn"
STUB_REPO_EXISTS=1 AWS_ACCOUNT_ID=$account AWS_DEFAULT_REGION=cn-northwest-1 IMAGE_TAG=v1 push
expect_calls "cn-northwest-1: the registry host ends in .amazonaws.com.cn" \
    "aws ecr get-login-password --region cn-northwest-1" \
    "docker login --username AWS --password-stdin $cn_registry <<< stub-ecr-token" \
    "aws ecr describe-repositories --region cn-northwest-1 --repository-names heavy-api" \
    "docker build --platform linux/amd64 --file Dockerfile --tag heavy-api:v1 ." \
    "docker tag heavy-api:v1 $cn_registry/heavy-api:v1" \
    "docker tag heavy-api:v1 $cn_registry/heavy-api:latest" \
    "docker push $cn_registry/heavy-api:v1" \
    "docker push $cn_registry/heavy-api:latest"
if grep -qx "IMAGE_URI=$cn_registry/heavy-api:v1" "$out"; then
    pass "cn-northwest-1: IMAGE_URI on amazonaws.com.cn"
else
    fail "cn-northwest-1 IMAGE_URI"
fi

# 9. Bad platform lists and a failing multi-arch build.
for bad in linux/386 linux/amd64,linux/amd64 "linux/amd64," ",linux/arm64" windows/amd64; do
    AWS_ACCOUNT_ID=$account AWS_REGION=$region push --platforms "$bad"
    if [[ "$rc" -eq 2 && ! -s "$log" ]] && grep -q 'platform' "$err"; then
        pass "--platforms $bad is refused (exit 2), nothing run"
    else
        fail "--platforms $bad (exit $rc)"
    fi
done
AWS_ACCOUNT_ID=$account AWS_REGION=$region push --platforms
if [[ "$rc" -eq 2 && ! -s "$log" ]] && grep -q -- '--platforms needs a value' "$err"; then
    pass "--platforms without a value is refused (exit 2)"
else
    fail "--platforms without a value (exit $rc)"
fi
STUB_BUILDX_FAILS=1 STUB_REPO_EXISTS=1 AWS_ACCOUNT_ID=$account AWS_REGION=$region push --platforms "$multi"
if [[ "$rc" -ne 0 ]] && ! grep -q 'imagetools' "$log" && ! grep -q '^IMAGE_URI=' "$out"; then
    pass "a failed multi-arch build stops the script (exit $rc)"
else
    fail "failed buildx build (exit $rc)"
fi

printf 'push-to-ecr.sh tests: %d passed, %d failed\n' "$passed" "$failed"
[[ "$failed" -eq 0 ]]
