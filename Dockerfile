# syntax=docker/dockerfile:1
# heavy-api container image: a static binary on distroless, run as a non-root user, for
# linux/amd64 and linux/arm64 (Graviton) from one Dockerfile.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/heavy-api:TAG --push .
#   docker build -t heavy-api .                       # the build machine's own architecture
#   docker run --rm -p 8000:8000 heavy-api
#
# Cross-compiled, never emulated: the build stage runs on the build machine's platform
# ($BUILDPLATFORM) and compiles for $TARGETARCH with Rust's --target and Debian's cross gcc, so an
# arm64 image builds at native speed on an x86 machine (and an amd64 one on Apple Silicon). Only
# the final stage is per-platform, and it only copies a file. docs/DEPLOY_ECS.md ("Architectures")
# explains how the arm64 image is verified.
#
# The master process is PID 1 (exec-form ENTRYPOINT, no shell, no init): it handles SIGTERM itself,
# lets in-flight requests finish for up to --graceful-timeout seconds and exits 0. CMD holds the
# production settings with `--workers auto` (2 workers per CPU the container may use: the cgroup
# quota, else the affinity mask), so one image fits every task size; the ECS task definitions pass
# the same flags with an explicit `--workers 4` for their 2-vCPU tasks (deploy/validate.py checks
# both). `--workers auto` and WEB_CONCURRENCY=auto need a heavy-api that supports them (issue #14).
# Timing rationale: docs/DEPLOY_ECS.md ("The timing arithmetic").

############################ build stage ############################
# Pinned toolchain; slim-bookworm ships gcc and libc6-dev, whose libc.a the static link needs.
# --platform=$BUILDPLATFORM: this stage runs natively on the build machine, whatever the target.
FROM --platform=$BUILDPLATFORM rust:1.95.0-slim-bookworm AS builder

# Set by BuildKit: the build machine's architecture and the image's (amd64 or arm64).
ARG BUILDARCH
ARG TARGETARCH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The cross linkers are named by their GNU triplet; on a native build the same names exist too
# (Debian's gcc installs <triplet>-gcc for its own architecture), so these hold in every case.
ENV CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc

WORKDIR /build

# 1) TARGETARCH -> the Rust target, Debian's cross gcc and libc packages for it, the ELF machine
#    number (e_machine, little-endian bytes 18-19 of the header), written to build-target.env for
#    the steps below. Any other architecture stops the build here.
RUN case "${TARGETARCH:?TARGETARCH is set by BuildKit; use docker buildx or DOCKER_BUILDKIT=1}" in \
        amd64) printf 'RUST_TARGET=x86_64-unknown-linux-gnu\nCROSS_GCC=gcc-x86-64-linux-gnu\nCROSS_LIBC=libc6-dev-amd64-cross\nELF_MACHINE=3e00\n' ;; \
        arm64) printf 'RUST_TARGET=aarch64-unknown-linux-gnu\nCROSS_GCC=gcc-aarch64-linux-gnu\nCROSS_LIBC=libc6-dev-arm64-cross\nELF_MACHINE=b700\n' ;; \
        *) echo "unsupported TARGETARCH '${TARGETARCH}': heavy-api images are linux/amd64 or linux/arm64" >&2; exit 1 ;; \
    esac > build-target.env \
    && cat build-target.env

# 2) A cross build needs the target's gcc and libc.a (Debian's cross packages, whose version the
#    bookworm base pins) and Rust's standard library for the target; a native build has both.
#    hadolint DL3008: the cross packages follow the pinned Debian release; pinning their exact
#    revisions would break the build whenever Debian's archive drops a superseded revision.
# hadolint ignore=DL3008
RUN . ./build-target.env \
    && if [ "${TARGETARCH}" != "${BUILDARCH:?BUILDARCH is set by BuildKit}" ]; then \
        apt-get update \
        && apt-get install -y --no-install-recommends "${CROSS_GCC}" "${CROSS_LIBC}" \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && rustup target add "${RUST_TARGET}"

# 3) Dependencies only, in their own layer: this layer is rebuilt only when Cargo.toml or
#    Cargo.lock change, not on every source edit. Placeholder crate roots stand in for src/.
COPY Cargo.toml Cargo.lock ./
RUN . ./build-target.env \
    && mkdir src \
    && printf 'fn main() {}\n' > src/main.rs \
    && printf '\n' > src/lib.rs \
    && cargo build --release --locked --target "${RUST_TARGET}" \
    && rm -rf src

# 4) The real sources. `touch` makes them newer than the placeholder build so cargo recompiles the
#    crate (COPY keeps the files' original modification times). Then the binary is checked: the
#    target's ELF machine, no program interpreter (static), no shared libraries; and, when the
#    build machine can run it (same architecture), `--version`.
COPY src ./src
RUN . ./build-target.env \
    && touch src/main.rs src/lib.rs \
    && cargo build --release --locked --target "${RUST_TARGET}" \
    && cp "target/${RUST_TARGET}/release/heavy-api" ./heavy-api \
    && machine="$(od -An -tx1 -j18 -N2 ./heavy-api | tr -d ' \n')" \
    && if [ "${machine}" != "${ELF_MACHINE}" ]; then \
        echo "heavy-api is ELF machine ${machine}, not ${ELF_MACHINE} (${RUST_TARGET})" >&2; exit 1; \
    fi \
    && readelf --program-headers --dynamic --wide ./heavy-api > heavy-api.elf.txt \
    && if grep -E 'INTERP|\(NEEDED\)' heavy-api.elf.txt; then \
        echo "heavy-api is not statically linked" >&2; exit 1; \
    fi \
    && if [ "${TARGETARCH}" = "${BUILDARCH}" ]; then ./heavy-api --version; fi

############################ runtime stage ############################
# distroless/static: no shell, no package manager, no libc (the binary needs none); it has
# /etc/passwd with the `nonroot` user (65532), CA certificates and a world-writable /tmp (mode
# 1777), where the io file lives. It is a multi-platform image: BuildKit takes the variant of the
# platform being built. Pin further by digest (of the multi-platform index) if your policy requires:
#   FROM gcr.io/distroless/static-debian12:nonroot@sha256:<digest>
FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=builder /build/heavy-api /usr/local/bin/heavy-api

# 65532 = distroless's `nonroot` user and group; numeric so orchestrators can verify non-root.
USER 65532:65532

# The worker count for a command that does not pass --workers (CMD below passes `auto` anyway).
ENV WEB_CONCURRENCY=auto

EXPOSE 8000

# Docker and docker compose run this; ECS ignores image health checks and runs the task
# definition's healthCheck (the same command). The probe's own timeout is 3 s.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/heavy-api", "healthcheck"]

STOPSIGNAL SIGTERM

ENTRYPOINT ["/usr/local/bin/heavy-api"]
CMD ["--bind", "0.0.0.0:8000", "--workers", "auto", "--threads", "2", "--timeout", "120", "--graceful-timeout", "25", "--keep-alive", "75", "--access-logfile", "-", "--io-file", "/tmp/heavy_api_io.bin"]
