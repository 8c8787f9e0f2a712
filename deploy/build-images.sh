#!/usr/bin/env bash
# Builds sangsaeng-coordinator:VERSION and sangsaeng-partner:VERSION without pulling from
# any registry and with no network inside the build:
#   1. a base image: Debian bookworm made by debootstrap (python3 3.11, venv, CA certs),
#      imported once; or any Python 3.11 image named with BASE (e.g. python:3.11-slim
#      where Docker Hub is reachable);
#   2. the project and every dependency as wheels, built here with pip (torch is the CPU
#      wheel, pinned in pyproject.toml), into the build context;
#   3. `build --network=none` of deploy/coordinator.Containerfile and partner.Containerfile.
#
#   deploy/build-images.sh                                   # podman, debootstrap base
#   ENGINE=docker BASE=python:3.11-slim deploy/build-images.sh
#
# Environment: ENGINE (podman|docker), BASE, TAG (default: the version in pyproject.toml),
# PYTHON (a Python 3.11 with pip; default .venv/bin/python), CACHE (the build context;
# default ~/.cache/sangsaeng-images), MIRROR (Debian's, for debootstrap).
# debootstrap needs root. podman needs `--format docker` to keep HEALTHCHECK (OCI has none).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENGINE=${ENGINE:-podman}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sangsaeng-images}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
DEBIAN_BASE=localhost/sangsaeng-base:bookworm

VERSION=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("'"$ROOT"'/pyproject.toml", "rb"))["project"]["version"])')
TAG=${TAG:-$VERSION}

log() { printf '== %s\n' "$*" >&2; }

has_image() {
    "$ENGINE" image inspect "$1" >/dev/null 2>&1
}

# The debootstrap base, made once: `$ENGINE rmi localhost/sangsaeng-base:bookworm` remakes it.
debian_base() {
    if has_image "$DEBIAN_BASE"; then
        return
    fi
    command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
    local rootfs status=0
    rootfs=$(mktemp -d)
    log "debootstrap bookworm into $rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$MIRROR" >&2 || status=$?
    if [ "$status" = 0 ]; then
        rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
        log "import $DEBIAN_BASE"
        tar -C "$rootfs" -c . | "$ENGINE" import - "$DEBIAN_BASE" >/dev/null || status=$?
    fi
    rm -rf "$rootfs"
    return "$status"
}

# The build context, laid anew each time: wheels/deps (every dependency; their layer stays
# cached while their names do not change) and wheels/project (sangsaeng itself). pip's own
# cache keeps what it built or downloaded, so a second build takes seconds here.
wheels() {
    local dir=$CACHE/context/wheels
    rm -rf "$CACHE/context"
    mkdir -p "$dir/deps" "$dir/project"
    log "wheels into $dir"
    # the postgres extra: the store's driver (both images share one dependency layer)
    "$PYTHON" -m pip wheel --quiet --wheel-dir "$dir/deps" "${ROOT}[postgres]"
    mv "$dir"/deps/sangsaeng-*.whl "$dir/project/"
    DEPS=$(cd "$dir/deps" && printf '%s\n' *.whl | sha256sum | cut -c1-16)
}

build() {  # image name, Containerfile
    local format=()
    [ "$ENGINE" = podman ] && format=(--format docker)
    # RUN --mount needs BuildKit, which older Docker releases use only when asked
    [ "$ENGINE" = docker ] && export DOCKER_BUILDKIT=1
    log "build $1:$TAG"
    "$ENGINE" build "${format[@]}" --network=none --build-arg "BASE=$BASE" \
        --build-arg "DEPS=$DEPS" \
        -f "$ROOT/deploy/$2" -t "$1:$TAG" "$CACHE/context"
}

if [ -z "${BASE:-}" ]; then
    debian_base
    BASE=$DEBIAN_BASE
fi
wheels
build sangsaeng-coordinator coordinator.Containerfile
build sangsaeng-partner partner.Containerfile
log "built sangsaeng-coordinator:$TAG and sangsaeng-partner:$TAG on $BASE"
