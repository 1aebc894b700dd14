#!/bin/sh
# young-host.sh SECONDS CMD [ARGS...] - run CMD in a time namespace where
# the host seems to have been up SECONDS seconds (CLOCK_MONOTONIC and
# CLOCK_BOOTTIME both read about SECONDS), whatever the real uptime.
#
# Code that takes a monotonic timestamp of 0 or 1 to mean "long ago" works
# on a host up for days and breaks on one that booted minutes ago (issue 16:
# CI on a fresh host). Running the time-dependent unit tests here catches
# that on any host. As root a failure to make the namespace is a failure;
# otherwise the test is skipped (exit 77) when no user namespace is allowed.
set -eu
secs=$1
shift
# the offsets: SECONDS minus each clock's reading now, in whole seconds.
# A time namespace's offsets count from the host's clocks, not from the
# namespace this runs in, so the offsets of the current one are added back.
offs=$(python3 - "$secs" <<'PY'
import sys, time
have = {"monotonic": 0, "boottime": 0}
try:
    for line in open("/proc/self/timens_offsets"):
        name, s, _ = line.split()
        have[name] = int(s)
except OSError:
    pass
s = int(sys.argv[1])
print(s - int(time.clock_gettime(time.CLOCK_MONOTONIC)) + have["monotonic"],
      s - int(time.clock_gettime(time.CLOCK_BOOTTIME)) + have["boottime"])
PY
)
mono=${offs% *}
boot=${offs#* }
userns=
[ "$(id -u)" = 0 ] || userns=-r
if ! err=$(unshare $userns -T --monotonic="$mono" --boottime="$boot" true 2>&1); then
	echo "young-host: $err" >&2
	echo "young-host: cannot create a time namespace (unshare $userns -T)" >&2
	[ "$(id -u)" = 0 ] && exit 1
	exit 77
fi
exec unshare $userns -T --monotonic="$mono" --boottime="$boot" "$@"
