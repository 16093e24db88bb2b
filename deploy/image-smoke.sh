#!/usr/bin/env bash
# Build and run the container image where no registry for base images is reachable (only Debian's
# package mirror): debootstrap a bookworm rootfs, import it as debian:bookworm-slim, build
# deploy/Dockerfile with BUILD=prebuilt (the dist/m7s built here), run it, check the health check,
# publish RTMP with ffmpeg and play HTTP-FLV with ffprobe. Needs root, podman, runc, debootstrap
# (apt-get install podman runc debootstrap), ffmpeg/ffprobe on PATH or M7S_FFMPEG/M7S_FFPROBE.
# Not part of npm test (it downloads ~60 MB of Debian packages and takes ~2 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
P="podman --runtime runc --storage-driver=vfs --cgroup-manager=cgroupfs --events-backend=file"
ROOTFS=${ROOTFS:-/tmp/m7s-rootfs}
if ! $P image exists docker.io/library/debian:bookworm-slim; then
  [ -d "$ROOTFS" ] || debootstrap --variant=minbase bookworm "$ROOTFS" http://deb.debian.org/debian
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  tar -C "$ROOTFS" -c . | $P import - docker.io/library/debian:bookworm-slim
fi
[ -x dist/m7s ] || npm run build:binary
$P build --format docker --isolation=chroot --network=host --pull=never --build-arg BUILD=prebuilt -f deploy/Dockerfile -t localhost/m7s:smoke .
$P rm -f m7s-smoke >/dev/null 2>&1 || true
# This VM refuses the container's default rlimits (EPERM from setrlimit in the runtime): ask for lower ones.
$P run -d --name m7s-smoke --network=host --ulimit nofile=10000:10000 --ulimit nproc=5000:5000 localhost/m7s:smoke
trap '$P rm -f m7s-smoke >/dev/null 2>&1 || true' EXIT
for _ in $(seq 50); do curl -fsS -o /dev/null http://127.0.0.1:8080/api/sysinfo && break; sleep 0.2; done
$P exec m7s-smoke id
$P healthcheck run m7s-smoke && echo "health check: healthy"
FFMPEG=${M7S_FFMPEG:-ffmpeg}; FFPROBE=${M7S_FFPROBE:-ffprobe}
"$FFMPEG" -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine -t 20 \
  -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p -g 25 -c:a aac -f flv rtmp://127.0.0.1:1935/live/smoke &
sleep 4
"$FFPROBE" -v error -read_intervals %+2 -show_entries stream=codec_name -of csv=p=0 http://127.0.0.1:8080/flv/live/smoke.flv
kill %1 2>/dev/null || true
$P stop -t 10 m7s-smoke >/dev/null && $P ps -a --filter name=m7s-smoke --format '{{.Names}} {{.Status}}'
$P images localhost/m7s:smoke --format 'image size: {{.Size}}'
