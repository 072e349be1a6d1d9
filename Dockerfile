# The blog as one static binary in a minimal non-root image.
#
#   docker build -t blog .
#   docker run -p 4000:4000 -p 4001:4001 -p 8080:8080 -e BLOG_API_TOKEN=... blog
#
# One image serves every role: its command picks it (serve, posts, comments,
# web). compose.yaml runs the three services on a MongoDB replica set.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Pure Go (the embedded store's SQLite driver too): a static binary that
# needs no C library in the image.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/blog ./cmd/blog \
 && mkdir -p /out/data

# distroless/static holds CA certificates, /etc/passwd and a nonroot user
# (65532), and no shell or curl: the health check is the binary itself.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/blog /usr/local/bin/blog
# Owned by the user, so a new volume mounted here is writable by it.
COPY --from=build --chown=65532:65532 /out/data /home/nonroot/data
USER 65532:65532
WORKDIR /home/nonroot
# Listen on every interface of the container (a token is then required:
# BLOG_API_TOKEN, or BLOG_INSECURE=1); the embedded store, when MONGO_URI is
# unset, lives in a volume.
ENV HOST=0.0.0.0 \
    BLOG_DATA_DIR=/home/nonroot/data
VOLUME ["/home/nonroot/data"]
EXPOSE 4000 4001 8080
# The default command serves all three; its posts service's /readyz says
# whether the store and the comment sync are working. A container running
# one service overrides this (see compose.yaml).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["blog", "healthcheck", "http://127.0.0.1:4000/readyz"]
ENTRYPOINT ["blog"]
CMD ["serve"]
