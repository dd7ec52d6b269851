#!/usr/bin/env bash
# `make stack-test`: bring the compose stack up on a real Docker engine, scaled
# to two gunicorn and three Daphne replicas, drive it through nginx on loopback
# ports (deploy/tests/), tear it down. On failure, every container's log is
# printed with the failing test.
#
# STACK_IMAGES picks where the base images come from:
#   registry - the official images (python, postgres, redis, nginx)
#   offline  - stand-ins built from Debian packages (deploy/offline/)
#   auto     - the official ones if the registry answers, else the stand-ins
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

deploy/offline/ensure-engine.sh

images="${STACK_IMAGES:-auto}"
if [[ "$images" == auto ]]; then
    if timeout 30 docker pull --quiet "${PYTHON_IMAGE:-python:3.11-slim-bookworm}" \
        >/dev/null 2>&1; then
        images=registry
    else
        images=offline
    fi
fi
if [[ "$images" == offline ]]; then
    echo "stack-test: no registry; using stand-in images (deploy/offline/)"
    deploy/offline/build-images.sh
    set -o allexport
    # shellcheck source=offline/images.env
    source deploy/offline/images.env
    set +o allexport
fi

exec "${PYTEST:-pytest}" deploy/tests -p no:cacheprovider -v -rP "$@"
