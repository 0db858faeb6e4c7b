# The reference node of scripts/bench-cluster.sh: the bare axum hello-world
# (app/examples/bare.rs, host-built release binary) on the same base as the app image, non-root.
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 bare \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin bare
COPY bare /usr/local/bin/bare
USER 10001:10001
ENV PORT=4000
EXPOSE 4000
CMD ["bare"]
