#!/usr/bin/env bash
# End-to-end demo of what qsfs has today: the segment log (cache/) with its
# hooks. Data is written into 1 MiB segments; each sealed segment and each
# checkpoint is handed to hooks/qsfs-hook-dir, which keeps copies in a local
# "remote" directory (standing in for stor and its backends until those
# land); segments confirmed remote are evicted under a disk limit and come
# back through the segment-missing hook when read.
# Usage: scripts/demo.sh BUILD_DIR   (work area: $QSFS_DEMO_DIR or /var/tmp/qsfs-demo)
set -euo pipefail
build=${1:?usage: demo.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
work=${QSFS_DEMO_DIR:-/var/tmp/qsfs-demo}
cache=$work/cache
export QSFS_REMOTE_DIR=$work/remote
export QSFS_LOG=${QSFS_LOG:-warn}
limit=""	# no disk limit until the eviction step
qc() { "$build/cache/qsfs-cache" -s 1MiB $limit -H "$top/hooks/qsfs-hook-dir" "$cache" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$work"
mkdir -p "$work"

step "write 200 values of 64 KiB (12.5 MiB) into 1 MiB segments, then sync"
qc fill 200 64KiB demo/
qc seal
ls "$cache" | head -5; echo "... $(ls "$cache" | grep -c qseg) segment files"

step "every sealed segment and checkpoint was handed to the hook (remote copies)"
ls "$QSFS_REMOTE_DIR"/*/ | head -5; echo "... $(ls "$QSFS_REMOTE_DIR"/*/ | wc -l) files in the remote directory"

step "confirm the sealed segments as stored remotely (stor will do this)"
ids=$(qc inspect | awk '$2 == "sealed" { print $1 }')
for id in $ids; do qc confirm "$id"; done
echo "confirmed: $(echo $ids | wc -w) segments"

step "evict under a 4 MiB limit: confirmed segments go, least recently read first"
limit="-m 4MiB"
qc evict
qc inspect | head -8

step "read a value whose segment was evicted: the segment-missing hook fetches it"
qc get demo/00000003 | cmp - <("$top/scripts/demo-value.py" 3 65536) && echo "demo/00000003: 65536 bytes, content exact"

step "verify every checksum of every local file"
qc inspect --verify | tail -4

step "statistics"
qc stats

printf '\nDemo data is in %s. The filesystem (fs/) and the storage daemon (stor/)\nbuild on this log: ./dev up runs the whole stack.\n' "$work"
