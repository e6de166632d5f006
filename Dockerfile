# Multi-stage build: compile in the Rust image, run in a slim Debian with only the binary.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked \
    && strip target/release/nta-user-svc

FROM debian:bookworm-slim
# The system's certificates: TLS to S3 (PHOTO_STORE=s3://…) verifies against them. OpenSSL's
# library: passkeys (webauthn-rs) link it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /nonexistent app \
    && mkdir -p /data /uploads \
    && chown app /data /uploads
COPY --from=build /src/target/release/nta-user-svc /usr/local/bin/nta-user-svc
USER app
ENV HOST=0.0.0.0 \
    PORT=8000 \
    UPLOAD_DIR=/uploads \
    MAIL_DIR=/data/mail \
    DATABASE_URL=sqlite:///data/nta_user_svc.db?mode=rwc \
    LOG_FORMAT=json
EXPOSE 8000
VOLUME ["/data", "/uploads"]
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["nta-user-svc", "check-health"]
ENTRYPOINT ["nta-user-svc"]
CMD ["serve"]
