# heavy-api container image: a static binary on distroless, run as a non-root user.
#
#   docker build --platform linux/amd64 -t heavy-api .
#   docker run --rm -p 8000:8000 heavy-api
#
# The master process is PID 1 (exec-form ENTRYPOINT, no shell, no init): it handles SIGTERM itself,
# lets in-flight requests finish for up to --graceful-timeout seconds and exits 0. The flags in CMD
# are the production settings; deploy/task-definition-*.json repeat them verbatim as the ECS
# `command`, and deploy/validate.py checks that they stay identical. Timing rationale:
# docs/DEPLOY_ECS.md ("The timing arithmetic").

############################ build stage ############################
# Pinned toolchain; slim-bookworm ships gcc and libc6-dev, whose libc.a the static link needs.
FROM rust:1.95.0-slim-bookworm AS builder

ENV CARGO_TERM_COLOR=never \
    CARGO_PROFILE_RELEASE_STRIP=debuginfo \
    RUSTFLAGS="-C target-feature=+crt-static"

WORKDIR /build

# 1) Dependencies only, in their own layer: this layer is rebuilt only when Cargo.toml or
#    Cargo.lock change, not on every source edit. Placeholder crate roots stand in for src/.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && printf 'fn main() {}\n' > src/main.rs \
    && printf '\n' > src/lib.rs \
    && cargo build --release --locked --target x86_64-unknown-linux-gnu \
    && rm -rf src

# 2) The real sources. `touch` makes them newer than the placeholder build so cargo recompiles the
#    crate (COPY keeps the files' original modification times).
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --target x86_64-unknown-linux-gnu \
    && cp target/x86_64-unknown-linux-gnu/release/heavy-api /heavy-api \
    && /heavy-api --version

############################ runtime stage ############################
# distroless/static: no shell, no package manager, no libc (the binary needs none); it has
# /etc/passwd with the `nonroot` user (65532), CA certificates and a world-writable /tmp (mode
# 1777), where the io file lives. Pin further by digest if your policy requires it:
#   FROM gcr.io/distroless/static-debian12:nonroot@sha256:<digest>
FROM gcr.io/distroless/static-debian12:nonroot

COPY --from=builder /heavy-api /usr/local/bin/heavy-api

# 65532 = distroless's `nonroot` user and group; numeric so orchestrators can verify non-root.
USER 65532:65532

EXPOSE 8000

# Docker and docker compose run this; ECS ignores image health checks and runs the task
# definition's healthCheck (the same command). The probe's own timeout is 3 s.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/heavy-api", "healthcheck"]

STOPSIGNAL SIGTERM

ENTRYPOINT ["/usr/local/bin/heavy-api"]
CMD ["--bind", "0.0.0.0:8000", "--workers", "4", "--threads", "2", "--timeout", "120", "--graceful-timeout", "25", "--keep-alive", "75", "--access-logfile", "-", "--io-file", "/tmp/heavy_api_io.bin"]
