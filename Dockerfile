# syntax=docker/dockerfile:1
# maestro in a container: built with the Rust image, run from distroless as a non-root user,
# data in a volume. See deploy/README.md.
#
#   docker build -t maestro --build-arg MAESTRO_BUILD_REVISION=$(git rev-parse --short HEAD) .
#   docker run -p 8080:8080 -v maestro-data:/var/lib/maestro maestro

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
# Named in maestro_build_info{revision}; the build has no repository to ask.
ARG MAESTRO_BUILD_REVISION=unknown
WORKDIR /src
COPY . .
# The registry and target directories are cache mounts: a rebuild recompiles only what changed.
# The binary is copied out of the mount, which does not outlive this step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    MAESTRO_BUILD_REVISION=${MAESTRO_BUILD_REVISION} cargo build --release --locked --bin maestro \
    && install -D -m 0755 target/release/maestro /out/usr/local/bin/maestro \
    && install -d -m 0700 -o 65532 -g 65532 /out/var/lib/maestro

# glibc and libgcc (which the binary links), CA certificates, no shell or package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/usr/local/bin/maestro /usr/local/bin/maestro
COPY --from=build --chown=65532:65532 /out/var/lib/maestro /var/lib/maestro
# The database and, on SQLite, its master key file (maestro.db.key) live here: back up both.
VOLUME /var/lib/maestro
WORKDIR /var/lib/maestro
ENV MAESTRO_DATABASE_URL=sqlite:///var/lib/maestro/maestro.db \
    MAESTRO_LISTEN=0.0.0.0:8080
EXPOSE 8080
# distroless's `nonroot` (65532:65532), which owns /var/lib/maestro.
USER nonroot
# SIGTERM (the default) drains and stops gracefully; give it the shutdown grace plus the drain
# delay (`docker stop -t 45`, compose's stop_grace_period).
STOPSIGNAL SIGTERM
# No HEALTHCHECK: the image has no shell and no HTTP client to run one with. Probe GET /healthz
# (and /readyz) from outside: a load balancer, Kubernetes' httpGet probes, the proxy.
ENTRYPOINT ["/usr/local/bin/maestro"]
CMD ["serve"]
