#!/bin/sh
# scripts/image-check.sh - build the container image's file system without
# Docker and run its entrypoint, for machines with no Docker engine.
#
#   scripts/image-check.sh [--fresh] [ROOT]      (as root; ROOT default
#                                                 /var/tmp/qsfs-image-root)
#
# What it does, following the Dockerfile:
#   1. the run stage's base: debootstrap --variant=minbase bookworm with the
#      runtime packages read from the Dockerfile's run stage (cached in ROOT
#      unless --fresh);
#   2. the build stage: meson setup --buildtype=release --prefix=/usr
#      -Dtests=false, meson install with DESTDIR=ROOT, the service files
#      into /etc/zinit, /etc/qsfs/qsfs.yaml -> /data/qsfs.yaml;
#   3. every binary's shared libraries resolve inside ROOT (ldd);
#   4. the ENTRYPOINT (zinit init --container) as PID 1 of new PID and
#      mount namespaces chrooted into ROOT, with the image's environment and
#      the quick start (QSFS_QUICKSTART=1 QSFS_FORMAT=1); the HEALTHCHECK
#      command until it passes; a file written on the mount; SIGTERM (what
#      docker stop sends) must exit 0 after the drain;
#   5. a second start on the same /data reads the file back.
# Differences from a real image: the base is debootstrap's minbase, not the
# bookworm-slim tarball (same packages, a few more documentation files),
# and the build runs on this machine (also bookworm), not in a container.
set -eu
fresh=0
if [ "${1:-}" = --fresh ]; then fresh=1; shift; fi
root=${1:-/var/tmp/qsfs-image-root}
top=$(cd "$(dirname "$0")/.." && pwd)
work=$root.work
[ "$(id -u)" = 0 ] || { echo "image-check: run as root (debootstrap, chroot, FUSE)" >&2; exit 2; }
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null

say() { printf '== %s\n' "$*"; }
fail() { printf 'image-check: FAILED: %s\n' "$*" >&2; exit 1; }

# the runtime packages, as the Dockerfile's run stage installs them
pkgs=$(awk '/^FROM debian:bookworm-slim/{run=1} run && /install -y/{p=1} p{print} p && !/\\$/{exit}' \
	"$top/Dockerfile" | tr -s ' \\\n' ' ' | sed 's/.*--no-install-recommends//; s/&&.*//' |
	xargs | tr ' ' ,)
[ -n "$pkgs" ] || fail "no runtime packages found in the Dockerfile's run stage"

cleanup_mounts() {
	for m in "$root/proc" "$root/dev"; do
		mountpoint -q "$m" 2>/dev/null && umount -l "$m" || true
	done
}
cleanup_mounts
if [ "$fresh" = 1 ] || [ ! -f "$root/.base-done" ] || [ "$(cat "$root/.base-done")" != "$pkgs" ]; then
	say "1. base: debootstrap minbase bookworm + $pkgs"
	rm -rf "$root"
	debootstrap --variant=minbase --include="$pkgs" bookworm "$root" \
		http://deb.debian.org/debian >"$work.debootstrap.log" 2>&1 ||
		fail "debootstrap (log: $work.debootstrap.log)"
	echo "$pkgs" > "$root/.base-done"
else
	say "1. base: cached in $root ($pkgs)"
fi

say "2. build: meson --buildtype=release --prefix=/usr -Dtests=false, install into $root"
rm -rf "$work.build" "$root/data"
meson setup "$work.build" "$top" --buildtype=release --prefix=/usr -Dtests=false >/dev/null ||
	fail "meson setup"
ninja -C "$work.build" >/dev/null || fail "ninja"
DESTDIR="$root" meson install -C "$work.build" >/dev/null || fail "meson install"
for f in usr/bin/zinit usr/bin/qsfs-service usr/bin/qsfs-stor usr/bin/qsfs-ctl usr/bin/qsfs-fs \
	 usr/bin/qsfs-cache usr/bin/qsfs-wait-hooks usr/libexec/qsfs/qsfs-hook; do
	[ -x "$root/$f" ] || fail "missing /$f"
done
mkdir -p "$root/etc/zinit" "$root/etc/qsfs" "$root/data"
cp "$top"/zinit/qsfs/prepare.yaml "$top"/zinit/qsfs/stor.yaml "$top"/zinit/qsfs/wait-hooks.yaml \
	"$top"/zinit/qsfs/fs.yaml "$root/etc/zinit/"
ln -sf /data/qsfs.yaml "$root/etc/qsfs/qsfs.yaml"

say "3. shared libraries resolve inside the image"
for f in zinit qsfs-stor qsfs-ctl qsfs-fs qsfs-cache qsfs-wait-hooks; do
	out=$(chroot "$root" /usr/bin/ldd "/usr/bin/$f" 2>&1) || fail "ldd /usr/bin/$f: $out"
	if echo "$out" | grep -q "not found"; then
		fail "/usr/bin/$f: $(echo "$out" | grep "not found")"
	fi
done
echo "   all found"

# The image's environment (Dockerfile ENV) plus the quick start.
envs="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin QSFS_CONFIG=/data/qsfs.yaml"
run=0
start() {
	run=$((run + 1))
	log=$work.zinit.$run.log
	: > "$log"
	unshare --pid --fork --mount --propagation private sh -c '
		mount --rbind /dev "$1/dev" && mount -t proc proc "$1/proc" &&
		exec chroot "$1" /usr/bin/env -i $2 QSFS_QUICKSTART=1 QSFS_FORMAT=1 \
			zinit init --container' sh "$root" "$envs" >>"$log" 2>&1 &
	outer=$!
	pid1=
	for _ in $(seq 100); do
		pid1=$(pgrep -P "$outer" | head -1) && [ -n "$pid1" ] && break
		sleep 0.1
	done
	[ -n "$pid1" ] || fail "zinit did not start (log: $log)"
}
inside() {	# a command inside the container, as docker exec runs it
	nsenter -t "$pid1" -m -p -r -w /usr/bin/env -i $envs "$@"
}
stop() {
	kill -TERM "$pid1"
	wait "$outer"
}

say "4. ENTRYPOINT zinit init --container (quick start), HEALTHCHECK, docker stop"
start
ok=0
for _ in $(seq 120); do
	if inside qsfs-ctl -c /data/qsfs.yaml ready >/dev/null 2>&1; then ok=1; break; fi
	kill -0 "$outer" 2>/dev/null || break
	sleep 0.5
done
[ "$ok" = 1 ] || { tail -20 "$log" >&2; stop || true; fail "the healthcheck never passed"; }
inside qsfs-ctl -c /data/qsfs.yaml ready
inside sh -c 'head -c 5000000 /dev/urandom > /mnt/qsfs/probe && sha256sum /mnt/qsfs/probe' \
	> "$work.sum"
inside zinit list
inside qsfs-ctl status | head -5
rc=0
stop || rc=$?
[ "$rc" = 0 ] || { tail -20 "$log" >&2; fail "SIGTERM: zinit exited $rc"; }
grep -q "queue drained" "$log" || fail "stor did not report its drain (log: $log)"
grep -q "shutdown complete: exit status 0" "$log" || fail "shutdown not clean (log: $log)"
echo "   SIGTERM: exit 0, queue drained"

say "5. a second start on the same /data"
start
ok=0
for _ in $(seq 120); do
	if inside qsfs-ctl ready >/dev/null 2>&1; then ok=1; break; fi
	sleep 0.5
done
[ "$ok" = 1 ] || { stop || true; fail "second start: the healthcheck never passed"; }
inside sha256sum /mnt/qsfs/probe | cmp -s - "$work.sum" || { stop || true; fail "probe differs"; }
stop || fail "second stop"
echo "   the file reads back; stopped cleanly"
cleanup_mounts
say "image-check: passed (logs: $work.zinit.1.log, $work.zinit.2.log)"
