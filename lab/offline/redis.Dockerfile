# Stand-in for the official redis image: Debian's Redis, data in /data.
ARG OFFLINE_BASE_IMAGE=chatroom-offline/debian:bookworm
FROM ${OFFLINE_BASE_IMAGE}
RUN apt-get update \
    && apt-get install --yes --no-install-recommends redis-server redis-tools \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
USER redis
WORKDIR /data
VOLUME /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]
