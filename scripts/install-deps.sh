#!/usr/bin/env bash
# Install what qsfs needs to build and test on Debian 12. Idempotent: when
# every package is already there it does nothing (and needs no network).
set -euo pipefail
pkgs=(
	gcc meson ninja-build pkg-config
	libfuse3-dev fuse3 liberasurecode-dev libsodium-dev libhiredis-dev
	libzstd-dev libcmocka-dev libyaml-dev libxxhash-dev
	libisal2	# liberasurecode loads ISA-L for the MDS Cauchy code (isa_l_rs_cauchy)
	libjson-c-dev
	redis-server python3 python3-pytest
	acl attr	# setfacl/getfacl, setfattr/getfattr: the tests drive ACLs and xattrs with them
	procps		# pgrep: the quick start and the container test find zinit with it
)
missing=()
for p in "${pkgs[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
