#!/usr/bin/env bash
# Daphne serving chatroom.asgi: the WebSockets under /ws/ (nginx routes them here).
# DAPHNE_ENDPOINT, a Twisted endpoint, replaces the address: systemd socket
# activation (deploy/systemd/) sets it to systemd:domain=UNIX:index=0.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

# The listen backlog: Twisted's default, 50, makes a burst of reconnecting
# clients (after a deploy) wait a second for a SYN retry.
if [[ -n "${DAPHNE_ENDPOINT:-}" ]]; then
    listen=(--endpoint "$DAPHNE_ENDPOINT")
else
    interface="${DAPHNE_BIND:-0.0.0.0}"
    listen=(--endpoint "tcp:port=${DAPHNE_PORT:-8001}:interface=${interface//:/\\:}:backlog=${DAPHNE_BACKLOG:-1024}")
fi

# Consumers borrow a pooled database connection for each call (chatroom/settings.py).
# They make their calls one at a time (database_sync_to_async's one thread), so
# while the database is down each waits at most DB_POOL_TIMEOUT seconds before
# the client gets its "unavailable" error frame, and the next one waits again.
export DB_POOL_MAX_SIZE="${DB_POOL_MAX_SIZE:-4}"
export DB_POOL_TIMEOUT="${DB_POOL_TIMEOUT:-2}"

# The levers that pay (docs/levers.md), each overridable with its variable;
# levers.server is Daphne's command line with the switched-on ones applied.
export LEVER_UVLOOP="${LEVER_UVLOOP:-on}"
export LEVER_WRITE_AT_ONCE="${LEVER_WRITE_AT_ONCE:-on}"
export LEVER_DISPATCH="${LEVER_DISPATCH:-on}"
export LEVER_SKIP_DB_HOP="${LEVER_SKIP_DB_HOP:-on}"
export LEVER_CONSUMER_CLEANUP="${LEVER_CONSUMER_CLEANUP:-on}"
export LEVER_MEMORY="${LEVER_MEMORY:-on}"
export LEVER_DROP_LATE_REPLIES="${LEVER_DROP_LATE_REPLIES:-on}"
# On SIGTERM every socket gets a close frame (1001) and DAPHNE_SHUTDOWN_TIMEOUT
# seconds to go.
export LEVER_CLEAN_STOP="${LEVER_CLEAN_STOP:-on}"
# A client that stops reading is closed (4408) once DAPHNE_MAX_SEND_BACKLOG
# bytes wait for it.
export LEVER_SEND_BACKLOG="${LEVER_SEND_BACKLOG:-on}"

# --proxy-headers: client addresses from nginx's X-Forwarded-For (nginx sets it
#   itself; only nginx can reach this port).
# --ping-interval: keepalive pings on idle sockets, well inside nginx's
#   proxy_read_timeout (120 s) so that idle chats are not cut by the proxy.
# --websocket-max-*-size: bytes; CHAT_MAX_FRAME_LENGTH is 16,384 characters, at
#   most 4 bytes each in UTF-8. Anything larger drops the connection before
#   the application sees it.
# --application-close-timeout: seconds a consumer has to finish after its
#   client has gone. When 10,000 clients drop at once (a network blip) their
#   disconnects queue on the process's one Redis pub/sub connection and take
#   several seconds. A consumer killed before its turn still leaves its groups
#   and presence and unsubscribes (LEVER_CONSUMER_CLEANUP), but one that
#   finishes unhurried is the normal case.
exec python -m levers.server "${listen[@]}" \
    --proxy-headers \
    --ping-interval "${DAPHNE_PING_INTERVAL:-20}" \
    --ping-timeout "${DAPHNE_PING_TIMEOUT:-30}" \
    --websocket-max-message-size "${DAPHNE_MAX_MESSAGE_SIZE:-65536}" \
    --websocket-max-frame-size "${DAPHNE_MAX_FRAME_SIZE:-65536}" \
    --application-close-timeout "${DAPHNE_APPLICATION_CLOSE_TIMEOUT:-60}" \
    --access-log - \
    chatroom.asgi:application
