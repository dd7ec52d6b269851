#!/usr/bin/env bash
# First start: initdb with POSTGRES_USER / POSTGRES_PASSWORD (or
# POSTGRES_PASSWORD_FILE), create POSTGRES_DB,
# listen on every address with password auth, as the official image does.
set -o errexit -o nounset -o pipefail

# POSTGRES_PASSWORD_FILE, as in the official image: the password from a file.
if [[ -n "${POSTGRES_PASSWORD_FILE:-}" ]]; then
    POSTGRES_PASSWORD="$(<"$POSTGRES_PASSWORD_FILE")"
fi
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"

if [[ "$1" == postgres && ! -s "$PGDATA/PG_VERSION" ]]; then
    if [[ -z "${POSTGRES_PASSWORD:-}" && "$POSTGRES_HOST_AUTH_METHOD" != trust ]]; then
        echo "error: POSTGRES_PASSWORD is not set" >&2
        exit 1
    fi
    pwfile="$(mktemp)"
    printf '%s\n' "${POSTGRES_PASSWORD:-}" >"$pwfile"
    initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust \
        --auth-host="$POSTGRES_HOST_AUTH_METHOD" --encoding=UTF8 ${POSTGRES_INITDB_ARGS:-}
    rm -f "$pwfile"
    printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
    printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
    pg_ctl --pgdata="$PGDATA" --options="-c listen_addresses=''" --wait start
    if [[ "$POSTGRES_DB" != postgres ]]; then
        psql --username="$POSTGRES_USER" --dbname=postgres --set=ON_ERROR_STOP=1 \
            --command="CREATE DATABASE \"$POSTGRES_DB\""
    fi
    pg_ctl --pgdata="$PGDATA" --mode=fast --wait stop
fi

exec "$@"
