#!/usr/bin/env bash
# Build the stand-in base image (a minimal Debian bookworm from debootstrap) that
# the offline stand-ins for python, postgres, redis and nginx are built from.
# For machines with no access to a container registry; see docs/deploy.md.
#
# The rootfs tarball is cached (CHATROOM_OFFLINE_CACHE) and the image is built
# only when it is missing, so a second run takes a second.
set -o errexit -o nounset -o pipefail

base_image="${OFFLINE_BASE_IMAGE:-chatroom-offline/debian:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${CHATROOM_OFFLINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chatroom-offline}"
# The CA bundle the stand-ins trust: the host's, so that a TLS-intercepting
# proxy between this machine and PyPI is trusted inside builds too.
ca_bundle="${OFFLINE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
tarball="$cache/bookworm-rootfs.tar"

if docker image inspect "$base_image" >/dev/null 2>&1; then
    echo "offline: $base_image is already built"
    exit 0
fi

if [[ ! -s "$tarball" ]]; then
    command -v debootstrap >/dev/null || {
        echo "offline: debootstrap is missing (apt-get install debootstrap)" >&2
        exit 1
    }
    mkdir -p "$cache"
    rootfs="$(mktemp -d "$cache/rootfs.XXXXXX")"
    trap 'rm -rf "$rootfs"' EXIT
    echo "offline: debootstrap bookworm into $rootfs (a few minutes, once)"
    debootstrap --variant=minbase --include=ca-certificates \
        bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
        tail -n 30 "$cache/debootstrap.log" >&2
        exit 1
    }
    cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
    # Keep images small: no apt caches, no docs, no man pages.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb || true"; };
APT::Install-Recommends "false";
APT
    tar -C "$rootfs" -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
fi

echo "offline: importing $tarball as $base_image"
docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["/bin/bash"]' \
    "$tarball" "$base_image" >/dev/null
