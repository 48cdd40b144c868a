#!/bin/sh
# Make sure what a target needs is present.
# Usage: scripts/deps.sh [--install] PACKAGE... [--optional PACKAGE...]
#
# Packages are named as in Debian, but presence is decided by probing what
# is used (a pkg-config module, a header, a command, a runtime library), so
# a present dependency is simply used, on any distribution and as any user.
# For what is missing: with --install, as root on Debian, install it (one
# apt-get update at most); otherwise, on Debian, print the exact install
# line, elsewhere what to look for. Fails only when a package before
# --optional is missing (and was not installed).
#
# libclang-rt-dev (the sanitizer and libFuzzer runtimes) is installed as
# the package of the clang that is there: libclang-rt-N-dev for clang N, or
# libclang-rt-dev, which goes with Debian's default clang, when clang is
# installed in the same step.
set -eu

# How to tell a package is there: m:<pkg-config module>, h:<header>,
# c:<command>, d:<Debian package> (dpkg-query); any one of a|b will do.
probe_of() {
	case $1 in
	liburing-dev)		echo 'm:liburing|h:liburing.h' ;;
	libcriterion-dev)	echo 'm:criterion|h:criterion/criterion.h' ;;
	libfuse3-dev)		echo 'm:fuse3' ;;
	fuse3)			echo 'c:fusermount3' ;;
	pkg-config|pkgconf)	echo 'c:pkg-config' ;;
	libclang-rt-dev|libclang-rt-*-dev) echo 'r:fuzzer' ;;
	golang-go)		echo 'c:go' ;;
	gnuplot|gnuplot-*)	echo 'c:gnuplot' ;;
	valgrind|clang|clang-[0-9]*|git|make|gcc|curl|wrk|python3) echo "c:$1" ;;
	apache2-utils)		echo 'c:ab' ;;
	*)			echo "d:$1" ;;
	esac
}

have_header() {
	[ -e "/usr/include/$1" ] || [ -e "/usr/local/include/$1" ] ||
		printf '#include <%s>\n' "$1" | ${CC:-cc} -E -x c - >/dev/null 2>&1
}

is_debian() {
	command -v dpkg-query >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1
}

# The major version of the installed clang, or nothing.
clang_major() {
	command -v clang >/dev/null 2>&1 || return 0
	clang --version 2>/dev/null | sed -n '1s/.*clang version \([0-9]*\).*/\1/p'
}

# Does clang find its runtime library NAME (libclang_rt.NAME)?
have_clang_rt() {
	d=$(clang --print-runtime-dir 2>/dev/null) || return 1
	[ -e "$d/libclang_rt.$1.a" ] || [ -e "$d/libclang_rt.$1-$(uname -m).a" ]
}

# The Debian package to install for $1.
debian_name() {
	case $1 in
	libclang-rt-dev)
		v=$(clang_major)
		if [ -n "$v" ]; then echo "libclang-rt-$v-dev"; else echo "$1"; fi ;;
	*)	echo "$1" ;;
	esac
}

# Is one of the probes in "a|b|..." satisfied? 2 when it cannot be told.
present() {
	ret=1
	old_ifs=$IFS; IFS='|'
	# shellcheck disable=SC2086
	set -- $1
	IFS=$old_ifs
	for t in "$@"; do
		case $t in
		m:*) command -v pkg-config >/dev/null 2>&1 &&
			pkg-config --exists "${t#m:}" && return 0 ;;
		h:*) have_header "${t#h:}" && return 0 ;;
		c:*) command -v "${t#c:}" >/dev/null 2>&1 && return 0 ;;
		r:*) have_clang_rt "${t#r:}" && return 0 ;;
		d:*) is_debian || { ret=2; continue; }
			dpkg-query -W -f='${Status}' "${t#d:}" 2>/dev/null |
				grep -q 'install ok installed' && return 0 ;;
		esac
	done
	return $ret
}

# What to look for, in words, off Debian.
describe() {
	echo "$1" | sed -e 's/m:\([^|]*\)/pkg-config module \1/g' \
		-e 's/h:\([^|]*\)/header <\1>/g' -e 's/c:\([^|]*\)/command \1/g' \
		-e 's/r:\([^|]*\)/clang runtime libclang_rt.\1/g' \
		-e 's/d:\([^|]*\)/Debian package \1/g' -e 's/|/ or /g'
}

install=false
if [ "${1:-}" = --install ]; then
	install=true
	shift
fi
required=true
missing=""
need=false
for p in "$@"; do
	if [ "$p" = --optional ]; then
		required=false
		continue
	fi
	probe=$(probe_of "$p")
	rc=0
	present "$probe" || rc=$?
	case $rc in
	0) continue ;;
	2) echo "ringctx: cannot tell whether $p is installed (not Debian); assuming it is" >&2
	   continue ;;
	esac
	missing="$missing $(debian_name "$p")"
	$required && need=true
	is_debian || echo "ringctx: missing $p: need $(describe "$probe")" >&2
done
[ -n "$missing" ] || exit 0

# Cannot install: fail if something required is missing.
give_up() {
	$need && exit 1
	echo "ringctx: (optional: the build goes on without them)" >&2
	exit 0
}

is_debian || give_up
line="apt-get install -y --no-install-recommends$missing"
if ! $install || [ "$(id -u)" -ne 0 ]; then
	[ "$(id -u)" -eq 0 ] || line="sudo $line"
	echo "ringctx: missing Debian packages:$missing" >&2
	echo "ringctx: install them with:  $line" >&2
	$install || echo "ringctx: (or, as root, with:  make deps)" >&2
	give_up
fi
echo "ringctx: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
