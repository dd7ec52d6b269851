#!/usr/bin/env bash
# `make stack-test`: bring the compose stack of a project generated from the
# template (lab/template.py) up on a real Docker engine, scaled
# to two gunicorn and three Daphne replicas, drive it through nginx on loopback
# ports (lab/stack/), tear it down. On failure, every container's log is
# printed with the failing test.
#
# STACK_IMAGES picks where the base images come from:
#   registry - the official images (python, postgres, redis, nginx)
#   offline  - stand-ins built from Debian packages (lab/offline/)
#   auto     - the official ones if the registry answers, else the stand-ins
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/../.."

lab/offline/ensure-engine.sh

# The stack of a project generated from the template, under a name of its own:
# what a user who ran the README's startproject command gets.
export STACK_PROJECT_NAME="${STACK_PROJECT_NAME:-acme_chat}"
generated="${TMPDIR:-/tmp}/chatroom-stack-project"
rm -rf "$generated"
python="$(dirname "${PYTEST:-.venv/bin/pytest}")/python"
STACK_PROJECT_DIR="$("$python" -m lab.template --generate "$STACK_PROJECT_NAME" --into "$generated")"
export STACK_PROJECT_DIR

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
    echo "stack-test: no registry; using stand-in images (lab/offline/)"
    lab/offline/build-images.sh
    set -o allexport
    # shellcheck source=../offline/images.env
    source lab/offline/images.env
    set +o allexport
fi

exec "${PYTEST:-pytest}" lab/stack -p no:cacheprovider -v -rP "$@"
