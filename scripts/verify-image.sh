#!/usr/bin/env bash
# Verifies a built heavy-api image for one platform, on a machine with Docker: the image has that
# architecture, `heavy-api --version` runs in it, and the server in it answers every test vector
# (prime counts and SHA-256 digests, `heavy-lab vectors`) exactly as on x86_64.
#
#   scripts/verify-image.sh IMAGE [PLATFORM]        PLATFORM: linux/arm64 (default) or linux/amd64
#
# IMAGE is a local image or a registry reference (a multi-arch tag: Docker pulls PLATFORM's
# variant). On a Graviton machine linux/arm64 runs natively; on an x86_64 machine Docker needs
# QEMU's binfmt handlers first (Docker Desktop has them; on Linux, once per boot:
# `docker run --privileged --rm tonistiigi/binfmt --install arm64`), and the vectors then take
# a minute or two. Exit 0 when everything matches. Guide: docs/DEPLOY_ECS.md ("Architectures").
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -lt 1 || $# -gt 2 || "$1" == -h || "$1" == --help ]]; then
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    [[ $# -ge 1 && ("$1" == -h || "$1" == --help) ]] && exit 0
    exit 2
fi
image="$1"
platform="${2:-linux/arm64}"
case "$platform" in
    linux/amd64 | linux/arm64) ;;
    *)
        echo "error: PLATFORM must be linux/amd64 or linux/arm64, got $platform" >&2
        exit 2
        ;;
esac
want_arch="${platform#linux/}"

if ! docker image inspect "$image" >/dev/null 2>&1; then
    echo "==> docker pull --platform $platform $image"
    docker pull --platform "$platform" "$image"
fi

echo "==> heavy-api --version in the $platform image"
docker run --rm --platform "$platform" "$image" --version

cid="$(docker run -d --rm --platform "$platform" -p 127.0.0.1::8000 "$image")"
trap 'docker stop -t 30 "$cid" >/dev/null 2>&1 || true' EXIT

arch="$(docker image inspect --format '{{.Architecture}}' "$(docker inspect --format '{{.Image}}' "$cid")")"
echo "==> the container's image architecture: $arch"
if [[ "$arch" != "$want_arch" ]]; then
    echo "error: the container runs a $arch image, not $want_arch" >&2
    exit 1
fi

port="$(docker port "$cid" 8000/tcp | head -n 1)"
port="${port##*:}"
base="http://127.0.0.1:$port"
echo "==> test vectors against the $platform container (once $base/heavy/health/ answers; 60 s at most)"
"$(scripts/setup.sh)/bin/heavy-lab" vectors --wait 60 "$base"
echo "==> the server's boot log (worker count)"
docker logs "$cid" 2>&1 | head -n 8
echo "verify-image: $image on $platform: OK"
