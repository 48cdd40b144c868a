#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Run the whole benchmark N times in a row (bench/run.sh) and print, per
# target, the N values (ratios of each run), their median and the spread of
# the runs around the median (the largest |value - median| / median, in %).
# A target whose spread is large is not measured stably on this machine.
#
# Usage: bench/compare.sh [N] [BUILD_DIR]     (default 3 runs, build/)
# Environment: RCTX_BENCH_QUICK=1 compares quick runs.
# Each run's output stays in BUILD/bench/compare/run-<i>.txt and its targets
# in BUILD/bench/compare/targets-<i>.tsv.
set -u

N=${1:-3}
BUILD=${2:-build}
cd "$(dirname "$0")/.." || exit 1
case $BUILD in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
DIR=$BUILD/bench/compare
mkdir -p "$DIR" || exit 1
rm -f "$DIR"/targets-*.tsv "$DIR"/run-*.txt

files=
i=1
while [ "$i" -le "$N" ]; do
	echo "== run $i of $N"
	rm -f "$BUILD/bench/targets.tsv"
	bench/run.sh "$BUILD" >"$DIR/run-$i.txt" 2>&1
	echo "   exit $?, $(tail -n 1 "$DIR/run-$i.txt")"
	if [ -f "$BUILD/bench/targets.tsv" ]; then
		cp "$BUILD/bench/targets.tsv" "$DIR/targets-$i.tsv"
		files="$files $DIR/targets-$i.tsv"
	else
		echo "compare.sh: run $i wrote no targets (see $DIR/run-$i.txt)" >&2
	fi
	i=$((i + 1))
done

[ -n "$files" ] || { echo "compare.sh: no run wrote targets" >&2; exit 1; }
echo
echo "Targets over $N runs (value = ringctx / reference of the same run; allocs: allocs/op;"
echo "wall time: fraction of the limit). spread = max |value - median| / median."
# target<TAB>value<TAB>limit<TAB>status, one file per run, same order.
awk -F'\t' -v n="$N" '
{
	if (!($1 in seen)) { seen[$1] = 1; ord[++k] = $1; lim[$1] = $3 }
	c = ++cnt[$1]; v[$1, c] = $2; st[$1, c] = $4
}
function median(name, m,    i, j, t, x) {
	for (i = 1; i <= m; i++) x[i] = v[name, i] + 0
	for (i = 2; i <= m; i++) { t = x[i]; for (j = i - 1; j >= 1 && x[j] > t; j--) x[j + 1] = x[j]; x[j + 1] = t }
	return (m % 2) ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
}
END {
	printf "%-60s %-32s %9s %8s %s\n", "target", "values", "median", "spread", "PASS/MISS per run"
	for (o = 1; o <= k; o++) {
		name = ord[o]; m = cnt[name]; vals = ""; sts = ""; ok = 1
		for (i = 1; i <= m; i++) {
			if (v[name, i] == "") ok = 0
			vals = vals (i > 1 ? " " : "") (v[name, i] == "" ? "-" : sprintf("%.3g", v[name, i]))
			sts = sts (i > 1 ? " " : "") st[name, i]
		}
		if (!ok) { printf "%-60s %-32s %9s %8s %s\n", name, vals, "-", "-", sts; continue }
		med = median(name, m); sp = 0
		for (i = 1; i <= m; i++) {
			d = v[name, i] - med; if (d < 0) d = -d
			if (med != 0 && d / med > sp) sp = d / med
		}
		printf "%-60s %-32s %9.3g %7s %s\n", name, vals, med, med == 0 ? "-" : sprintf("±%.0f%%", sp * 100), sts
	}
}' $files
