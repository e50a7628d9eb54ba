# The skycall manager image: a static binary on distroless, running as
# 65532:65532 (nonroot). Build from the repository root:
#   docker build -t ghcr.io/skycall-io/skycall-manager:0.1.0 .

FROM golang:1.26 AS builder
# Set by BuildKit for multi-platform builds (docker buildx --platform).
ARG TARGETOS=linux
ARG TARGETARCH
WORKDIR /src
# Modules first, in their own layer: it is rebuilt only when go.mod or go.sum
# change, not on every source edit.
COPY go.mod go.sum ./
RUN go mod download
# .dockerignore lets through only the packages the manager is built from.
COPY . .
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o /manager ./cmd/manager

FROM gcr.io/distroless/static:nonroot
COPY --from=builder /manager /manager
USER 65532:65532
# Metrics (--metrics-bind-address) and health probes (--health-probe-bind-address).
EXPOSE 8443/tcp 8081/tcp
ENTRYPOINT ["/manager"]
