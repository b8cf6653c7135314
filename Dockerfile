# syntax=docker/dockerfile:1
# The hub in a small image: the one `threshold` binary on Debian slim, run as an
# unprivileged user, its data in a volume. Build: docker build -t threshold .
# Run: docker run -p 8080:8080 -p 18830:18830 -v threshold-data:/var/lib/threshold threshold

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The distribution profile: LTO and one codegen unit (Cargo.toml, [profile.dist]).
RUN cargo build --locked --profile dist -p threshold-cli \
    && cp target/dist/threshold /threshold

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/threshold --create-home threshold
COPY --from=build /threshold /usr/local/bin/threshold
USER threshold
ENV THRESHOLD_DATA_DIR=/var/lib/threshold \
    THRESHOLD_HTTP_ADDR=0.0.0.0:8080 \
    THRESHOLD_EMBEDDED_MQTT_ADDR=0.0.0.0:18830
VOLUME ["/var/lib/threshold"]
EXPOSE 8080 18830
ENTRYPOINT ["/usr/local/bin/threshold"]
CMD ["serve"]
