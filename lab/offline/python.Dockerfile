# Stand-in for the official python image: Debian's Python 3.11 with venv.
ARG OFFLINE_BASE_IMAGE=chatroom-offline/debian:bookworm
FROM ${OFFLINE_BASE_IMAGE}
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3 python3-venv python-is-python3 \
    && rm -rf /var/lib/apt/lists/*
CMD ["python3"]
