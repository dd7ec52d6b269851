#!/usr/bin/env bash
# The official nginx image's entrypoint, in short: run /docker-entrypoint.d/*.sh,
# then render /etc/nginx/templates/*.template with the defined environment
# variables only, so nginx's own $variables are left alone.
set -o errexit -o nounset -o pipefail

if [[ "${1:-}" == nginx ]]; then
    for script in /docker-entrypoint.d/*.sh; do
        [[ -x "$script" ]] && "$script"
    done
    defined="$(printf '${%s} ' $(env | cut -d= -f1))"
    for template in /etc/nginx/templates/*.template; do
        [[ -e "$template" ]] || continue
        target="/etc/nginx/conf.d/$(basename "$template" .template)"
        envsubst "$defined" <"$template" >"$target"
    done
fi

exec "$@"
