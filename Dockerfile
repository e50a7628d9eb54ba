# skycall's images, one target each, built from the repository root:
#   docker build -t ghcr.io/skycall-io/skycall-manager:0.1.0 .               (the operator; default)
#   docker build --target agent  -t ghcr.io/skycall-io/skycall-agent:0.1.0 .  (skynet pods' sidecar)
#   docker build --target skynet -t ghcr.io/skycall-io/skynet:0.1.0 .         (skynet + skycall's Lua)
# The Go images are a static binary on distroless, running as 65532:65532
# (nonroot). The local cluster (hack/cluster.sh, no Docker) builds the same
# images with hack/ociimage; test/ociimage checks both agree.

FROM golang:1.26 AS builder
# Set by BuildKit for multi-platform builds (docker buildx --platform).
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
# Modules first, in their own layer: it is rebuilt only when go.mod or go.sum
# change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download
# .dockerignore lets through only the packages the binaries are built from.
COPY . .
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /manager ./cmd/manager && \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /skycall-agent ./cmd/skycall-agent

# skynet at the commit skycall is tested against (hack/skynet.sh pins the
# same one), built the same way: no jemalloc, so gcc and make suffice.
FROM debian:bookworm AS skynet-build
ARG SKYNET_COMMIT=f19d1605b4b313c27d9931582c3153313a571492
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates gcc git libc6-dev make && \
    rm -rf /var/lib/apt/lists/*
RUN git clone --filter=blob:none https://github.com/cloudwu/skynet /skynet-src && \
    git -C /skynet-src -c advice.detachedHead=false checkout "${SKYNET_COMMIT}" && \
    make -C /skynet-src linux MALLOC_STATICLIB= SKYNET_DEFINES=-DNOUSE_JEMALLOC && \
    mkdir /skynet && cd /skynet-src && cp -r skynet cservice luaclib lualib service /skynet/

# skynet with skycall's Lua service in /skynet/skycall (lua/skycall/README.md).
# It runs from /skynet so that a usual skynet config's relative paths
# (./service/?.lua, ./cservice/?.so) hold; mount your config and services
# and pass the config's path as the argument.
FROM debian:bookworm-slim AS skynet
COPY --from=skynet-build /skynet /skynet
COPY lua/skycall/*.lua /skynet/skycall/
WORKDIR /skynet
USER 65532:65532
# skynet's cluster port in skycall's examples (config/samples/skynet).
EXPOSE 2528/tcp
ENTRYPOINT ["/skynet/skynet"]

FROM gcr.io/distroless/static:nonroot AS agent
COPY --from=builder /skycall-agent /skycall-agent
USER 65532:65532
# Readiness, liveness and metrics (--listen).
EXPOSE 9090/tcp
ENTRYPOINT ["/skycall-agent"]

# The manager is the last stage: what `docker build .` makes.
FROM gcr.io/distroless/static:nonroot AS manager
COPY --from=builder /manager /manager
USER 65532:65532
# Metrics (--metrics-bind-address) and health probes (--health-probe-bind-address).
EXPOSE 8443/tcp 8081/tcp
ENTRYPOINT ["/manager"]
