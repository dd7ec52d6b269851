#!/usr/bin/env bash
# Build stand-ins for the official python, postgres, redis and nginx images from
# Debian packages, for machines that cannot pull from a registry. Their names
# are in images.env. Docker's layer cache makes a second run take seconds.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")"

"./build-base.sh"

# shellcheck source=images.env
source ./images.env
base="${OFFLINE_BASE_IMAGE:-chatroom-offline/debian:bookworm}"

build() {
    local image="$1" dockerfile="$2" output
    echo "offline: building $image"
    if ! output="$(docker build --network host --build-arg "OFFLINE_BASE_IMAGE=$base" \
        --tag "$image" --file "$dockerfile" . 2>&1)"; then
        echo "$output" >&2
        exit 1
    fi
}

build "$PYTHON_IMAGE" python.Dockerfile
build "$POSTGRES_IMAGE" postgres.Dockerfile
build "$REDIS_IMAGE" redis.Dockerfile
build "$NGINX_IMAGE" nginx.Dockerfile
