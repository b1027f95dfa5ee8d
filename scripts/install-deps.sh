#!/bin/sh
# Installs the Debian packages Cairn needs to build and test; fast and silent when all are present.
set -eu

# iproute2 and nftables: the torture harness's network-namespace mode (--net netns, root only)
# makes namespaces, veths and a bridge with ip, and cuts links with nft.
PACKAGES="build-essential clang pkg-config libuv1-dev liblmdb-dev lmdb-utils libprotobuf-c-dev \
protobuf-c-compiler check iproute2 nftables"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
		echo "install-deps: not root and no sudo; install these packages:$missing" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
