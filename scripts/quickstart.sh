#!/usr/bin/env bash
# The README's quick start: the whole qsfs stack under its supervisor, on
# this machine, as the container runs it (docs/CONTAINER.md) but with the
# state in one local directory.
#
#   scripts/quickstart.sh start BUILD_DIR   (./dev up)
#   scripts/quickstart.sh stop [BUILD_DIR]  (./dev down)
#
# start: `zinit init --container` (the image's entrypoint) with copies of the
# real service files (zinit/qsfs/*.yaml), in the background, detached from
# the shell. Its `prepare` service writes a demo configuration (a key and six
# dir:// backends, one disk: no real redundancy) and formats the volume the
# first time; then qsfs-stor, the hook waiter and qsfs-fs start and the
# volume is mounted at $DIR/mnt. Returns once `qsfs-ctl ready` says so (at
# most 60 s).
# stop: SIGTERM to zinit, which stops fs, then wait-hooks, then stor; stor
# uploads everything queued before it exits. Follows the log until zinit has
# exited (each line once, in the order written) and reports whether every
# service stopped cleanly (exit 0).
# Both are safe to repeat: start when it runs already, stop when it does not,
# say so.
#
# Everything lives in $QSFS_QS_DIR (default /var/tmp/qsfs-quickstart):
#   qsfs.yaml key cache/ stor/ backends/  the configuration, the data
#   mnt/          the mount
#   services/     the service files zinit reads
#   zinit.log     zinit's output: its own messages and each service's
#                 lines prefixed with "NAME: "
#   zinit.sock    zinit's control socket (zinit -s ... list | log | status NAME)
#   zinit.pid, zinit.exit   the running zinit; its exit status once it ended
#   env           `. $DIR/env` puts the tools on PATH and exports QSFS_CONFIG
#                 and ZINIT_SOCKET, so qsfs-ctl and zinit need no -c or -s
#                 (in scripts too: no aliases)
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${QSFS_QS_DIR:-/var/tmp/qsfs-quickstart}
conf=$dir/qsfs.yaml
mnt=$dir/mnt
svc=$dir/services
sock=$dir/zinit.sock
log=$dir/zinit.log
pidf=$dir/zinit.pid
exitf=$dir/zinit.exit

bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }

# The pid of the running zinit of this quick start, or nothing.
zinit_pid() {
	local pid
	pid=$(cat "$pidf" 2>/dev/null) || return 1
	[ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = zinit ] || return 1
	echo "$pid"
}

# A FUSE mount left behind by a qsfs-fs that was killed answers ENOTCONN:
# unmount it so the next qsfs-fs can mount there.
clear_stale_mount() {
	if awk -v m="$mnt" '$2 == m { f = 1 } END { exit !f }' /proc/self/mounts; then
		echo "quickstart: unmounting a stale mount at $mnt (left by an unclean stop)"
		fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt"
	fi
}

# The build directory: given, or the one recorded by the last start.
build_dir() {
	local b=${1:-}
	[ -n "$b" ] || b=$(cat "$dir/build-dir" 2>/dev/null) || true
	echo "$b"
}

show_status() {	# BUILD_DIR
	"$1/stor/qsfs-ctl" -c "$conf" status 2>&1 | sed 's/^/  /'
}

start() {
	local build=${1:?usage: quickstart.sh start BUILD_DIR}
	build=$(cd "$build" && pwd) || exit 1
	local b
	for b in stor/qsfs-stor stor/qsfs-ctl fs/qsfs-fs hooks/qsfs-wait-hooks zinit/zinit; do
		[ -x "$build/$b" ] || { echo "quickstart: $build/$b is missing: build first" >&2; exit 1; }
	done
	mkdir -p "$dir"
	local pid
	if pid=$(zinit_pid); then
		bold "qsfs is already up (zinit pid $pid), mounted at $mnt"
		"$build/zinit/zinit" -s "$sock" list 2>&1 | sed 's/^/  /'
		show_status "$build"
		echo "Stop it with ./dev down."
		exit 0
	fi
	clear_stale_mount
	rm -f "$pidf" "$exitf" "$dir/wrapper.pid"
	echo "$build" > "$dir/build-dir"
	rm -rf "$svc"
	mkdir -p "$svc"
	cp "$top"/zinit/qsfs/*.yaml "$svc/"

	# What the services see (the container sets the same variables, docs/CONTAINER.md).
	local bin="$build/stor:$build/fs:$build/cache:$build/hooks:$build/zinit:$top/zinit"
	export PATH="$bin:$PATH"
	export QSFS_CONFIG=$conf QSFS_QUICKSTART=1 QSFS_FORMAT=1
	export QSFS_MOUNT=$mnt QSFS_LOG=${QSFS_LOG:-info}
	{
		echo "# . $dir/env: the qsfs tools of this quick start on PATH"
		echo "export PATH=\"$bin:\$PATH\""
		echo "export QSFS_CONFIG='$conf'"
		echo "export ZINIT_SOCKET='$sock'"	# zinit's client, without -s
	} > "$dir/env"

	touch "$log"
	local from
	from=$(($(wc -l < "$log") + 1))
	echo "== $(date '+%F %T') quickstart: zinit init --container -c $svc -s $sock" >> "$log"
	# The image's entrypoint (zinit init --container: its exit status says
	# whether every service stopped cleanly), detached (own session, no
	# terminal) so it outlives this shell; the wrapper keeps zinit's exit
	# status, which only a parent can see. Job control on: a background
	# command of a script would otherwise inherit SIGINT ignored, and zinit
	# could not be stopped with it.
	set -m
	setsid sh -c 'echo $$ > "$1"; zinit init --container -c "$2" -s "$3"; echo $? > "$4"' \
		quickstart "$dir/wrapper.pid" "$svc" "$sock" "$exitf" \
		< /dev/null >> "$log" 2>&1 &
	set +m
	local i wrapper=""
	for i in $(seq 100); do
		wrapper=$(cat "$dir/wrapper.pid" 2>/dev/null) && [ -n "$wrapper" ] &&
			pid=$(pgrep -P "$wrapper" -x zinit) && break
		[ -f "$exitf" ] && break
		sleep 0.1
	done
	if [ -z "${pid:-}" ] || [ -f "$exitf" ]; then
		echo "quickstart: zinit did not start; the end of $log:" >&2
		tail -n 20 "$log" >&2
		exit 1
	fi
	echo "$pid" > "$pidf"
	bold "== started zinit (pid $pid): prepare, then stor, wait-hooks, fs"
	local deadline=$((SECONDS + 60))
	until "$build/stor/qsfs-ctl" -c "$conf" ready >/dev/null 2>&1; do
		if [ -f "$exitf" ] || [ $SECONDS -ge $deadline ]; then
			if [ -f "$exitf" ]; then
				echo "quickstart: zinit exited with status $(cat "$exitf") before qsfs was ready" >&2
			else
				echo "quickstart: qsfs not ready after 60 s; zinit keeps running (./dev down stops it)" >&2
				"$build/zinit/zinit" -s "$sock" list 2>&1 | sed 's/^/  /' >&2
			fi
			echo "the end of $log:" >&2
			tail -n 30 "$log" | sed 's/^/  /' >&2
			exit 1
		fi
		sleep 0.2
	done
	# zinit's own test of fs (the same command) passes within moments
	for i in $(seq 50); do
		"$build/zinit/zinit" -s "$sock" list 2>/dev/null | grep -qx 'fs: running' && break
		sleep 0.1
	done
	tail -n "+$from" "$log" | grep -E '^prepare: ' | sed 's/^/  /'
	echo
	bold "qsfs is up: the volume is mounted at $mnt"
	"$build/zinit/zinit" -s "$sock" list 2>&1 | sed 's/^/  /'
	show_status "$build"
	cat <<EOF

Use it:   echo hello > $mnt/hello; ls -l $mnt
Status:   . $dir/env; qsfs-ctl status; zinit list; zinit log
Log:      $log
Stop it:  ./dev down   (uploads everything to the backends first, then exits)
EOF
}

stop() {
	local build pid
	build=$(build_dir "${1:-}")
	if ! pid=$(zinit_pid); then
		echo "qsfs is not running (no zinit for $dir)."
		if [ -f "$exitf" ]; then
			local st
			st=$(cat "$exitf")
			case "$st" in
			0) st="0: a clean shutdown" ;;
			1) st="1: not every service stopped cleanly (see $log)" ;;
			*) [ "$st" -gt 128 ] 2>/dev/null && st="$st: zinit was killed by signal $((st - 128))" ;;
			esac
			echo "Its last run ended with zinit exit status $st."
		fi
		clear_stale_mount
		exit 0
	fi
	bold "== before the stop"
	if [ -n "$build" ] && [ -x "$build/stor/qsfs-ctl" ]; then
		"$build/stor/qsfs-ctl" -c "$conf" status 2>&1 |
			grep -E '^(state|pending uploads|stored|filesystem|  local cache):' | sed 's/^/  /'
		echo "  (what is not in a sealed segment yet is sealed and handed to stor when fs stops)"
	fi
	local from
	from=$(($(wc -l < "$log") + 1))
	kill -TERM "$pid"
	bold "== sent SIGTERM to zinit (pid $pid): it stops fs, then wait-hooks, then stor,"
	bold "   which uploads everything queued before it exits. zinit's log:"
	trap 'echo; echo "stopped watching; the shutdown goes on (./dev down again follows it)"; exit 130' INT
	tail -s 0.2 -n "+$from" -f --pid="$pid" "$log" | sed 's/^/  /'
	trap - INT
	local i
	for i in $(seq 50); do
		[ -f "$exitf" ] && break
		sleep 0.1
	done
	# (the log just followed says how the drain went: each line once, in
	# the order written; no second digest of it)
	local st
	st=$(cat "$exitf" 2>/dev/null || echo unknown)
	echo
	if [ "$st" = 0 ]; then
		bold "clean shutdown: zinit exited 0 (every service stopped cleanly, the upload queue is empty)"
	else
		bold "NOT a clean shutdown: zinit exit status $st (the reasons are in $log)"
		echo "What is in the cache and in stor's journal ($dir) is kept for the next ./dev up."
	fi
	clear_stale_mount
	echo "The data stays in $dir; ./dev up starts it again (rm -rf $dir to start over)."
	[ "$st" = 0 ]
}

case "${1:-}" in
start) start "${2:-}" ;;
stop) stop "${2:-}" ;;
*)
	echo "usage: quickstart.sh start BUILD_DIR | stop [BUILD_DIR]" >&2
	exit 2
	;;
esac
