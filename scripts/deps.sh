#!/bin/sh
# Make sure the Debian packages a target needs are installed.
# Usage: scripts/deps.sh PACKAGE...
# As root, installs what is missing (one apt-get update at most); otherwise
# prints the exact install line and fails.
set -eu
missing=""
for p in "$@"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "ringctx: missing Debian packages:$missing" >&2
	echo "ringctx: install them with:  sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "ringctx: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
