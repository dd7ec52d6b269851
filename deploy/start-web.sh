#!/usr/bin/env bash
# gunicorn serving chatroom.wsgi: every HTTP path nginx does not serve itself.
# Settings in deploy/gunicorn.conf.py, each overridable from the environment.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

exec gunicorn --config deploy/gunicorn.conf.py chatroom.wsgi:application
