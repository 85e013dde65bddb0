#!/usr/bin/env bash
# Make this (Debian 12) machine able to build and run the stack with no container registry:
# Docker engine + classic compose + debootstrap from apt, dockerd started when none answers, and
# the local base image local/debian:bookworm made from the apt mirror (debootstrap, docker import).
# Idempotent; ~2.5 min on a fresh machine, seconds after. Prints DOCKERD_PID=<pid> when it started
# dockerd (the caller stops it). Needs root (or sudo) for apt and dockerd.
set -euo pipefail
WORK=${BW_DOCKER_WORK:-/tmp/babelwatch-docker}
mkdir -p "$WORK"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
export DEBIAN_FRONTEND=noninteractive
DOCKER=/usr/bin/docker
if ! [ -x "$DOCKER" ] || ! command -v docker-compose >/dev/null || ! command -v debootstrap >/dev/null; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq docker.io docker-compose debootstrap >/dev/null
fi
if ! $DOCKER info >/dev/null 2>&1; then
  $SUDO sh -c "nohup /usr/sbin/dockerd >'$WORK/dockerd.log' 2>&1 & echo \$! >'$WORK/dockerd.pid'"
  for _ in $(seq 1 120); do $DOCKER info >/dev/null 2>&1 && break; sleep 0.5; done
  $DOCKER info >/dev/null
  echo "DOCKERD_PID=$(cat "$WORK/dockerd.pid")"
fi
if ! $DOCKER image inspect local/debian:bookworm >/dev/null 2>&1; then
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$MIRROR" ] || MIRROR=$(awk '$1=="deb"{for(i=2;i<=NF;i++) if($i ~ /^https?:/){print $i; exit}}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$MIRROR" ] || { echo "no apt mirror in /etc/apt/sources.list*" >&2; exit 1; }
  $SUDO rm -rf "$WORK/rootfs"
  $SUDO debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >/dev/null
  $SUDO chroot "$WORK/rootfs" apt-get clean
  $SUDO rm -rf "$WORK/rootfs"/var/lib/apt/lists/*
  $SUDO tar -C "$WORK/rootfs" -c . | $DOCKER import --change 'CMD ["bash"]' - local/debian:bookworm >/dev/null
  $SUDO rm -rf "$WORK/rootfs"
fi
