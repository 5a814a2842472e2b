# shepherd is pure Go (no cgo: SQLite is modernc.org/sqlite), so the image is
# one static binary plus CA certificates, run as the non-root user the
# Deployment expects (65532).
#
#   docker build -t REGISTRY/shepherd:TAG --build-arg VERSION=TAG .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/shepherd ./cmd/shepherd

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/shepherd /shepherd
USER 65532:65532
ENTRYPOINT ["/shepherd"]
