#!/usr/bin/env bash
# Make sure a Docker engine answers, on a Debian machine that may have none:
# install Debian's docker.io, docker-compose (1.29) and debootstrap when they
# are missing, and start dockerd in the background when it is not running.
# Used by `make stack-test`; harmless where Docker is already set up.
set -o errexit -o nounset -o pipefail

log="${DOCKERD_LOG:-/tmp/chatroom-dockerd.log}"
sudo=""
if [[ "$(id -u)" != 0 ]]; then sudo="sudo"; fi

missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 \
    || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
    echo "engine: installing ${missing[*]} from Debian's packages"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install --yes -qq "${missing[@]}" >/dev/null
fi

if docker info >/dev/null 2>&1; then
    exit 0
fi
echo "engine: starting dockerd (log: $log)"
# Published ports by iptables rules, not by docker-proxy: that process holds
# two descriptors for each connection (the stack test holds 10,000 sockets),
# under the engine's open-file limit, which this machine caps at 20,000.
$sudo sh -c "nohup dockerd --userland-proxy=false >'$log' 2>&1 &"
for _ in $(seq 60); do
    if docker info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
echo "engine: dockerd did not answer within 60 s; its log:" >&2
tail -n 40 "$log" >&2
exit 1
