#!/usr/bin/env bash
# One-shot release step: apply migrations before the servers start.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

exec python manage.py migrate --noinput
