#!/bin/sh
# The libraries export the public API and nothing else: every global symbol
# of the static archive is public (in lib/ringctx.map) or internal with the
# reserved prefix rctx__, and the shared library exports exactly the map.
# Usage: scripts/check-symbols.sh ARCHIVE SHARED_LIBRARY
set -eu
a=$1; so=$2
map=$(mktemp); trap 'rm -f "$map"' EXIT
sed -n 's/^[[:space:]]*\(rctx_[a-z0-9_]*\);$/\1/p' lib/ringctx.map | sort >"$map"
bad=$(nm -g --defined-only "$a" | awk 'NF == 3 { print $3 }' | sort -u |
	grep -v '^rctx__' | grep -vxF -f "$map" || true)
if [ -n "$bad" ]; then
	echo "symbols: $a defines globals outside rctx_/rctx__:" $bad >&2
	exit 1
fi
exported=$(nm -D --defined-only "$so" | awk 'NF == 3 && $3 !~ /^RINGCTX_/ { sub(/@.*/, "", $3); print $3 }' | sort -u)
if [ "$exported" != "$(cat "$map")" ]; then
	echo "symbols: $so exports differ from lib/ringctx.map:" >&2
	echo "$exported" | diff "$map" - >&2 || true
	exit 1
fi
echo "symbols: $(wc -l <"$map") public symbols exported; no other globals"
