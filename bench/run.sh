#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Run every ringctx benchmark and Go's own context benchmarks, print one
# comparison table with target checks, and write:
#   BUILD/bench/results.csv   (copied to docs/bench/results.csv)
#   docs/bench/results.md     the table, the targets and the method
#   docs/bench/*.png          plots (when gnuplot is installed)
# Raw outputs of every program stay in BUILD/bench/.
#
# Usage: bench/run.sh [BUILD_DIR]          (from the top of the source tree)
# Environment: RCTX_BENCH_QUICK=1 for a short run (fewer, shorter runs).
set -u
umask 022

BUILD=${1:-build}
cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
case $BUILD in /*) ;; *) BUILD=$TOP/$BUILD ;; esac
OUT=$BUILD/bench
DOCS=$TOP/docs/bench
mkdir -p "$OUT" "$DOCS" || exit 1

QUICK=${RCTX_BENCH_QUICK:-0}
[ "$QUICK" = "" ] && QUICK=0
if [ "$QUICK" != 0 ]; then
	MODE=quick; GO_BENCHTIME=25ms; GO_COUNT=3; E2E_RUNS=3; LIMIT=60
else
	MODE=full; GO_BENCHTIME=100ms; GO_COUNT=5; E2E_RUNS=5; LIMIT=300
fi
# Every program runs under a time limit (seconds), so that a hang cannot
# stall the suite; rows written before it stopped are kept.
run_limited() {
	if command -v timeout >/dev/null 2>&1; then
		timeout -k 5 "$LIMIT" "$@"
	else
		"$@"
	fi
}
export RCTX_BENCH_QUICK

CSV=$OUT/measured.csv     # rows written by the C programs (see bench/bench.h)
GOTXT=$OUT/go-bench.txt   # raw `go test -bench` output
GOCSV=$OUT/go.csv         # name,ns_op,B_op,allocs_op (medians)
E2ETXT=$OUT/go-e2e.txt    # output of bench/go/e2e
RESULTS=$OUT/results.csv
: >"$CSV"; : >"$GOTXT"; : >"$GOCSV"; : >"$E2ETXT"
status=0
start=$(date +%s)
# Wall time of each part, printed at the end (the targets include the total).
PARTS=$OUT/parts.txt
: >"$PARTS"
part_t0=$start
part_begin() { part_t0=$(date +%s.%N); }
part_end() { echo "$1 $(echo "$(date +%s.%N) $part_t0" | awk '{ printf "%.1f", $1 - $2 }')" >>"$PARTS"; }

echo "ringctx benchmarks ($MODE mode), $(uname -sr), $(nproc) CPUs"

# ---- Go ---------------------------------------------------------------------
if command -v go >/dev/null 2>&1; then
	GOROOT_SRC=$(go env GOROOT)/src/context
	export GOCACHE="$OUT/gocache" GOPATH="$OUT/gopath" GOMODCACHE="$OUT/gopath/pkg/mod"
	export GOPROXY=off GOFLAGS= GOMAXPROCS=2 CGO_ENABLED=0
	part_begin
	echo "== Go $(go env GOVERSION): go test -bench . -benchmem context (GOMAXPROCS=2, -benchtime=$GO_BENCHTIME -count=$GO_COUNT)"
	if ! (cd "$GOROOT_SRC" && go test -run XXX -bench . -benchmem \
		-benchtime="$GO_BENCHTIME" -count="$GO_COUNT") >>"$GOTXT" 2>&1; then
		echo "run.sh: go test context failed (see $GOTXT)" >&2
		status=1
	fi
	if ! (cd "$TOP/bench/go" && go test -run XXX -bench . -benchmem \
		-benchtime="$GO_BENCHTIME" -count="$GO_COUNT" ./ctxextra) >>"$GOTXT" 2>&1; then
		echo "run.sh: go test bench/go/ctxextra failed (see $GOTXT)" >&2
		status=1
	fi
	part_end "go test context"
	part_begin
	echo "== Go end-to-end: bench/go/e2e (-runs $E2E_RUNS)"
	if (cd "$TOP/bench/go" && go build -o "$OUT/go-e2e" ./e2e) >>"$E2ETXT" 2>&1; then
		run_limited "$OUT/go-e2e" -n 1000,8000 -runs "$E2E_RUNS" >>"$E2ETXT" 2>&1 || status=1
		grep -v '^E2E,' "$E2ETXT"
	else
		echo "run.sh: building bench/go/e2e failed (see $E2ETXT)" >&2
		status=1
	fi
	part_end "go e2e"
	# Medians over the -count repetitions. Names lose "Benchmark" and "-2".
	awk '
	/^Benchmark/ {
		name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
		ns = ""; b = ""; a = ""
		for (i = 2; i < NF; i++) {
			if ($(i + 1) == "ns/op") ns = $i
			if ($(i + 1) == "B/op") b = $i
			if ($(i + 1) == "allocs/op") a = $i
		}
		if (ns == "") next
		if (!(name in cnt)) order[++norder] = name
		k = ++cnt[name]; vns[name, k] = ns; vb[name, k] = b; va[name, k] = a
	}
	function med(arr, name, n,    i, j, t, x) {
		for (i = 1; i <= n; i++) x[i] = arr[name, i] + 0
		for (i = 2; i <= n; i++) { t = x[i]; for (j = i - 1; j >= 1 && x[j] > t; j--) x[j + 1] = x[j]; x[j + 1] = t }
		return (n % 2) ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
	}
	END {
		for (o = 1; o <= norder; o++) {
			n = order[o]
			printf "%s,%.6g,%.6g,%.6g\n", n, med(vns, n, cnt[n]), med(vb, n, cnt[n]), med(va, n, cnt[n])
		}
	}' "$GOTXT" >"$GOCSV"
	echo "   $(wc -l <"$GOCSV") Go benchmarks parsed"
else
	echo "== go not found: the Go columns stay empty"
fi

# ---- C ----------------------------------------------------------------------
for b in context nop cancel latency memory e2e scale isolation; do
	bin=$BUILD/bench_$b
	part_begin
	if [ ! -x "$bin" ]; then
		echo "run.sh: $bin missing (make bench builds it)" >&2
		status=1
		continue
	fi
	# stream the output; keep the exit status (no pipefail in POSIX sh)
	{ RCTX_BENCH_CSV="$CSV" run_limited "$bin" 2>&1; echo $? >"$OUT/.rc"; } |
		tee "$OUT/bench_$b.txt"
	rc=$(cat "$OUT/.rc")
	if [ $rc -ne 0 ]; then
		[ $rc -eq 124 ] && echo "run.sh: bench_$b stopped after $LIMIT s" >&2
		echo "run.sh: bench_$b failed (exit $rc)" >&2
		status=1
	fi
	part_end "bench_$b"
done
# Any other bench_* program that was added later runs too.
for bin in "$BUILD"/bench_*; do
	[ -x "$bin" ] || continue
	case ${bin##*/} in
	bench_context | bench_nop | bench_cancel | bench_latency | bench_memory | bench_e2e | bench_scale | \
	bench_isolation | bench_sqlite) continue ;;
	esac
	part_begin
	RCTX_BENCH_CSV="$CSV" run_limited "$bin" >"$OUT/${bin##*/}.txt" 2>&1 || status=1
	cat "$OUT/${bin##*/}.txt"
	part_end "${bin##*/}"
done

# ---- SQLite: the ringctx VFS vs the unix VFS, and a stuck disk side by side ----
# bench_sqlite (built when SQLite is there) runs the workload on the local
# disk of the build, then the stuck-disk episode with its peers: Python's
# sqlite3 module (bench/sqlite/episode.py) and Go's database/sql with
# mattn/go-sqlite3 (bench/go/sqlite, built here: cgo, offline, against
# Debian's /usr/share/gocode). A missing peer is "n/a" with the reason.
SQTABLE=$OUT/sqlite-episode.txt
: >"$SQTABLE"
part_begin
if [ -x "$BUILD/bench_sqlite" ]; then
	sq_go= sq_go_why=
	if ! command -v go >/dev/null 2>&1; then
		sq_go_why="go not installed (apt-get install golang-go)"
	elif [ ! -d /usr/share/gocode/src/github.com/mattn/go-sqlite3 ]; then
		sq_go_why="mattn/go-sqlite3 not installed (apt-get install golang-github-mattn-go-sqlite3-dev)"
	elif (cd "$TOP/bench/go/sqlite" && GOCACHE="$OUT/gocache" GOPATH="$OUT/gopath" \
		GOMODCACHE="$OUT/gopath/pkg/mod" GOPROXY=off GOFLAGS=-mod=mod CGO_ENABLED=1 \
		go build -o "$OUT/go-sqlite" .) >"$OUT/go-sqlite-build.txt" 2>&1; then
		sq_go=$OUT/go-sqlite
	else
		sq_go_why="go build of bench/go/sqlite failed (see $OUT/go-sqlite-build.txt)"
	fi
	{ RCTX_BENCH_CSV="$CSV" RCTX_BENCH_SQLITE_DIR="$OUT" RCTX_BENCH_SQLITE_TABLE="$SQTABLE" \
		RCTX_BENCH_SQLITE_PY="$TOP/bench/sqlite/episode.py" RCTX_BENCH_SQLITE_GO="$sq_go" \
		RCTX_BENCH_SQLITE_GO_WHY="$sq_go_why" run_limited "$BUILD/bench_sqlite" 2>&1
	  echo $? >"$OUT/.rc"; } | tee "$OUT/bench_sqlite.txt"
	rc=$(cat "$OUT/.rc")
	if [ $rc -ne 0 ]; then
		[ $rc -eq 124 ] && echo "run.sh: bench_sqlite stopped after $LIMIT s" >&2
		echo "run.sh: bench_sqlite failed (exit $rc)" >&2
		status=1
	fi
else
	echo "== bench_sqlite: not built (SQLite: apt-get install libsqlite3-dev)"
fi
part_end "bench_sqlite"
sqlite_wall=$(awk '$1 == "bench_sqlite" { print $2 }' "$PARTS")

# ---- the service: ringctx-objd vs nginx vs Go net/http (bench/objd/run.sh) ----
# Prints its own table and targets (BUILD/bench/objd.txt, objd.tsv).
part_begin
if ! run_limited bash "$TOP/bench/objd/run.sh" "$BUILD"; then
	echo "run.sh: bench/objd/run.sh failed" >&2
	status=1
fi
part_end "service (objd)"

# ---- join -------------------------------------------------------------------
# results.csv: section,benchmark,unit,reference,ref_value,ringctx,ratio,
#              ref_B_op,ringctx_B_op,ref_allocs_op,ringctx_allocs_op
# ratio = ringctx / reference (lower is better for ringctx).
awk -F, -v gofile="$GOCSV" -v e2efile="$E2ETXT" '
BEGIN {
	OFS = ","
	while ((getline l < gofile) > 0) {
		split(l, f, ","); gns[f[1]] = f[2]; gb[f[1]] = f[3]; ga[f[1]] = f[4]
	}
	while ((getline l < e2efile) > 0) {
		if (l !~ /^E2E,/) continue
		split(l, f, ","); e2e[f[2]] = f[4]
	}
	print "section,benchmark,unit,reference,ref_value,ringctx,ratio,ref_B_op,ringctx_B_op,ref_allocs_op,ringctx_allocs_op"
}
{
	sec = $1; name = $2; unit = $3; rc = $4; refn = $5; ref = $6
	rb = $7; ra = $8; refb = $9; refa = $10
	if (refn ~ /^goallocs:/) {
		# goallocs:<Go benchmark>:<contexts per Go op>: Go allocs per context
		split(refn, f, ":"); g = f[2]
		ref = (g in ga && ga[g] != "") ? ga[g] / f[3] : ""
		refa = ref
		refn = "Go " g
	} else if (refn ~ /^go:/) {
		g = substr(refn, 4)
		# the single-ring and per-core rows both compare to Go at the same N
		k = name; sub(/\/(single|per-core)$/, "", k)
		if (g == "e2e") { ref = (k in e2e) ? e2e[k] : "" }
		else if (g in gns) { ref = gns[g]; refb = gb[g]; refa = ga[g] }
		else { ref = "" }
		refn = (g == "e2e") ? "Go (bench/go/e2e)" : "Go"
	}
	ratio = ""
	if (rc != "" && ref != "" && ref + 0 > 0) ratio = sprintf("%.4g", rc / ref)
	print sec, name, unit, refn, ref, rc, ratio, refb, rb, refa, ra
}' "$CSV" >"$RESULTS"
cp "$RESULTS" "$DOCS/results.csv"

# ---- table and targets ------------------------------------------------------
TABLE=$OUT/table.txt
TARGETS=$OUT/targets.txt
awk -F, '
function fmt(v, unit) {
	if (v == "") return "-"
	if (unit == "B") return sprintf("%.2f B", v)
	if (unit == "allocs") return sprintf("%.3f", v)
	v += 0
	if (v < 10) return sprintf("%.2f ns", v)
	if (v < 10000) return sprintf("%.1f ns", v)
	if (v < 1e7) return sprintf("%.1f us", v / 1e3)
	return sprintf("%.1f ms", v / 1e6)
}
function num(v, p) { return v == "" ? "-" : sprintf(p, v) }
NR == 1 { next }
{
	if ($1 != last) {
		printf "\n[%s]\n", $1
		printf "%-40s %-28s %11s %11s %8s %9s %9s %7s %7s\n", "benchmark", "reference", "reference", "ringctx", "ratio", "ref B/op", "rctx B/op", "ref al", "rctx al"
		last = $1
	}
	printf "%-40s %-28s %11s %11s %8s %9s %9s %7s %7s\n", $2, substr($4, 1, 28), fmt($5, $3), fmt($6, $3), ($7 == "" ? "-" : sprintf("%.3fx", $7)), num($8, "%.0f"), num($9, "%.1f"), num($10, "%.0f"), num($11, "%.2f")
}' "$RESULTS" >"$TABLE"

# Every target is computed from this run's figures. targets.csv (for
# bench/compare.sh): target<TAB>value<TAB>limit<TAB>status.
TCSV=$OUT/targets.tsv
elapsed=$(( $(date +%s) - start ))
if [ "$MODE" = quick ]; then wall_limit=60; else wall_limit=240; fi
if [ "$MODE" = quick ]; then sqlite_limit=20; else sqlite_limit=60; fi
awk -F, -v tcsv="$TCSV" -v wall="$elapsed" -v wall_limit="$wall_limit" \
	-v sqlite_wall="$sqlite_wall" -v sqlite_limit="$sqlite_limit" '
NR == 1 { next }
{ val[$2] = $6; rat[$2] = $7; ref[$2] = $5; refname[$2] = $4 }
function out(desc, ok, shown, v, lim) {
	printf "%-7s %-60s %s\n", ok ? "PASS" : "MISS", desc, shown
	printf "%s\t%s\t%s\t%s\n", desc, v, lim, ok ? "PASS" : "MISS" >tcsv
	if (ok) pass++; else miss++
}
function nodata(desc) {
	printf "NODATA  %-60s (no measurement)\n", desc; nodata_n++
	printf "%s\t\t\tNODATA\n", desc >tcsv
}
# ringctx / reference of the same run <= lim
function ratio(desc, bench, lim,    v) {
	if (!(bench in rat) || rat[bench] == "") { nodata(desc); return }
	v = rat[bench] + 0
	out(desc, v <= lim, sprintf("%.3fx (limit %.2fx)", v, lim), v, lim)
}
# allocations per op <= lim, with the reference (Go) allocs/op beside it
function allocs(desc, bench, lim,    v) {
	if (!(bench in val) || val[bench] == "") { nodata(desc); return }
	v = val[bench] + 0
	out(desc, v <= lim, sprintf("%.3f allocs/op (%s: %s allocs/op)", v, refname[bench], ref[bench] == "" ? "-" : sprintf("%.3g", ref[bench])), v, lim)
}
# rows in ns per op of a throughput: ringctx ops/s / reference ops/s of the
# same run (the inverse of the time ratio) >= lim
function throughput(desc, bench, lim,    v) {
	if (!(bench in rat) || rat[bench] == "" || rat[bench] + 0 <= 0) { nodata(desc); return }
	v = 1 / rat[bench]
	out(desc, v >= lim, sprintf("%.3fx %s (limit >= %.2fx)", v, refname[bench], lim), v, lim)
}
# a deadline kept: the time of ringctx minus the reference (its budget), in ns,
# within [0, lim]; a negative time: it did not return at all
function within(desc, bench, lim,    v, r) {
	if (!(bench in val) || val[bench] == "") { nodata(desc); return }
	v = val[bench] + 0; r = ref[bench] + 0
	if (v < 0) { out(desc, 0, sprintf("did not return (budget %.0f ms)", r / 1e6), v, lim); return }
	out(desc, v >= r && v - r <= lim, sprintf("%.1f ms after its %.0f ms budget (limit %.0f ms)",
	    (v - r) / 1e6, r / 1e6, lim / 1e6), (v - r) / 1e6, lim / 1e6)
}
END {
	printf "" >tcsv
	ratio("cancel 1,000 blocked readers, per-core rings <= 0.5x Go", "BlockedReaders/N=1000/per-core", 0.5)
	ratio("cancel 8,000 blocked readers, per-core rings <= 0.5x Go", "BlockedReaders/N=8000/per-core", 0.5)
	ratio("tracked NOP batch=32 <= 1.10x raw liburing", "NOP/batch=32", 1.10)
	ratio("tracked NOP batch=256 <= 1.10x raw liburing", "NOP/batch=256", 1.10)
	allocs("allocs per create+cancel, cancel context = 0", "AllocsPerCreateCancel/cancel", 0)
	allocs("allocs per create+cancel, timeout context = 0", "AllocsPerCreateCancel/timeout", 0)
	allocs("allocs per create+cancel, value context = 0", "AllocsPerCreateCancel/value", 0)
	ratio("deadline lateness p50 (rctx_wait) <= 0.75x clock_nanosleep", "DeadlineLateness/wait/p50", 0.75)
	ratio("deadline lateness p99 (rctx_wait) <= 0.75x clock_nanosleep", "DeadlineLateness/wait/p99", 0.75)
	ratio("healthy read p99, stuck episode on <= 1.5x off (async)", "HealthyRead/async/p99", 1.5)
	ratio("healthy read p99, stuck episode on <= 1.5x off (blocking)", "HealthyRead/blocking/p99", 1.5)
	throughput("cached 4k randread QD32, ctx per read >= 0.9x fio IOPS", "RandRead4k/QD32/cancel-ctx", 0.9)
	ratio("SQLite workload, ringctx VFS total <= 1.10x unix VFS", "SQLiteWorkload/total", 1.10)
	within("stuck SELECT, ringctx VFS returns <= 50 ms after its budget", "StuckQuery/ringctx", 50e6)
	if (sqlite_wall != "")
		out(sprintf("SQLite part wall time <= %d s (%s mode)", sqlite_limit, sqlite_limit == 20 ? "quick" : "full"),
		    sqlite_wall <= sqlite_limit + 0, sprintf("%.1f s, %.3fx of the limit", sqlite_wall, sqlite_wall / sqlite_limit),
		    sqlite_wall / sqlite_limit, 1)
	out(sprintf("bench wall time <= %d s (%s mode)", wall_limit, wall_limit == 60 ? "quick" : "full"), wall <= wall_limit + 0, sprintf("%d s, %.3fx of the limit", wall, wall / wall_limit), wall / wall_limit, 1)
	printf "targets: %d PASS, %d MISS, %d NODATA\n", pass, miss, nodata_n
}' "$RESULTS" >"$TARGETS"

echo
echo "================================================================================"
echo "ringctx vs Go $(command -v go >/dev/null 2>&1 && go env GOVERSION) and raw liburing ($MODE mode; medians; ratio = ringctx / reference)"
cat "$TABLE"
echo
echo "Wall time per part (s):"
awk '{ t = $NF; $NF = ""; printf "  %-24s %6.1f\n", $0, t }' "$PARTS"
echo
echo "Targets (ratio = ringctx / reference of this run):"
cat "$TARGETS"
[ -s "$SQTABLE" ] && { echo; cat "$SQTABLE"; }
[ -s "$OUT/objd.txt" ] && cat "$OUT/objd.txt"

# ---- docs/bench/results.md -----------------------------------------------------
{
	echo "# ringctx benchmark results"
	echo
	echo "Generated by \`make bench\` (bench/run.sh, $MODE mode) on $(date -u '+%Y-%m-%d %H:%M UTC'):"
	echo "$(uname -sr), $(nproc) CPUs, $(command -v go >/dev/null 2>&1 && go env GOVERSION || echo 'no Go'),"
	echo "liburing $(dpkg-query -W -f='${Version}' liburing-dev 2>/dev/null || echo '?')."
	echo "Every figure is the median of several repetitions (full mode 5, quick mode 3);"
	echo "ratio = ringctx / reference, measured in the same run (lower is better for ringctx)."
	echo "Raw data: [results.csv](results.csv). Method and caveats: [bench/README.md](../../bench/README.md)."
	echo
	echo "## Targets"
	echo
	echo '```'
	cat "$TARGETS"
	echo '```'
	awk -F, '
	function fmt(v, unit) {
		if (v == "") return "-"
		if (unit == "B") return sprintf("%.2f B", v)
	if (unit == "allocs") return sprintf("%.3f", v)
		v += 0
		if (v < 10) return sprintf("%.2f ns", v)
		if (v < 10000) return sprintf("%.1f ns", v)
		if (v < 1e7) return sprintf("%.1f µs", v / 1e3)
		return sprintf("%.1f ms", v / 1e6)
	}
	function num(v, p) { return v == "" ? "-" : sprintf(p, v) }
	BEGIN {
		title["context"] = "Go context benchmarks (Go 1.19 src/context/benchmark_test.go, C port in bench/bench_context.c)"
		title["uring"] = "Tracked NOP submit + complete vs raw liburing (bench/bench_nop.c), per request"
		title["cancel"] = "Cancelling N in-flight socket receives (bench/bench_cancel.c), cancel start to last completion"
		title["latency"] = "Wake-up latency (bench/bench_latency.c)"
		title["memory"] = "Heap bytes per object (bench/bench_memory.c)"
		title["e2e"] = "End-to-end: cancel N blocked socket readers (bench/bench_e2e.c vs bench/go/e2e)"
		title["scale"] = "Scale: 1M contexts, 100,000 reads in flight, 400,000 deadlines (bench/bench_scale.c)"
		title["isolation"] = "Isolation: healthy-device reads during a stuck episode, cached random reads vs fio (bench/bench_isolation.c)"
		title["sqlite"] = "SQLite: the ringctx VFS vs the unix VFS, one workload, and the stuck query against its budget (bench/bench_sqlite.c)"
	}
	NR == 1 { next }
	{
		if ($1 != last) {
			printf "\n## %s\n\n", ($1 in title) ? title[$1] : $1
			print "| benchmark | reference | reference | ringctx | ratio | ref B/op | ringctx B/op | ref allocs/op | ringctx allocs/op |"
			print "|---|---|--:|--:|--:|--:|--:|--:|--:|"
			last = $1
		}
		printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $2, $4, fmt($5, $3), fmt($6, $3), ($7 == "" ? "-" : sprintf("%.3fx", $7)), num($8, "%.0f"), num($9, "%.1f"), num($10, "%.0f"), num($11, "%.2f")
	}' "$RESULTS"
	if [ -s "$SQTABLE" ]; then
		echo
		echo "## SQLite: a stuck disk side by side, ringctx VFS, Python sqlite3, Go database/sql (bench/bench_sqlite.c)"
		echo
		echo '```'
		cat "$SQTABLE"
		echo '```'
	fi
	if [ -s "$OUT/objd.txt" ]; then
		echo
		echo "## Service: ringctx-objd vs nginx vs Go net/http (bench/objd/run.sh)"
		echo
		echo '```'
		cat "$OUT/objd.txt"
		echo '```'
	fi
	echo
	echo "## Plots"
	echo
	for p in context nop cancel e2e; do
		echo "![$p]($p.png)"
	done
} >"$DOCS/results.md"

# ---- plots ------------------------------------------------------------------
if command -v gnuplot >/dev/null 2>&1; then
	awk -F, 'NR > 1 && $1 == "context" && $7 != "" { printf "\"%s\" %s\n", $2, $7 }' "$RESULTS" >"$OUT/plot_context.dat"
	awk -F, 'NR > 1 && $1 == "uring" { n = $2; sub(/^NOP\/batch=/, "", n); printf "%s %s %s\n", n, $5, $6 }' "$RESULTS" >"$OUT/plot_nop.dat"
	awk -F, 'NR > 1 && $1 == "cancel" {
		n = $2; sub(/^CancelRecv\/N=/, "", n); rc[n] = $6
		if ($4 ~ /batched/) b[n] = $5; else a[n] = $5
		if (!(n in seen)) { seen[n] = 1; ord[++k] = n }
	} END { for (i = 1; i <= k; i++) { n = ord[i]; printf "%s %s %s %s\n", n, rc[n] / 1e6, b[n] == "" ? "NaN" : b[n] / 1e6, a[n] == "" ? "NaN" : a[n] / 1e6 } }' "$RESULTS" >"$OUT/plot_cancel.dat"
	awk -F, 'NR > 1 && $1 == "e2e" {
		n = $2; sub(/^BlockedReaders\/N=/, "", n); lay = n; sub(/\/.*/, "", n); sub(/^[0-9]*\/?/, "", lay)
		if (!(n in seen)) { seen[n] = 1; ord[++k] = n }
		g[n] = ($5 == "" ? "NaN" : $5 / 1e6); v[n, lay] = $6 / 1e6
	} END { for (i = 1; i <= k; i++) { n = ord[i]; printf "%s %s %s %s\n", n, g[n], v[n, "single"], v[n, "per-core"] } }' "$RESULTS" >"$OUT/plot_e2e.dat"
	gnuplot >"$OUT/gnuplot.log" 2>&1 <<EOF || echo "run.sh: gnuplot failed (see $OUT/gnuplot.log)" >&2
set terminal pngcairo size 1400,700 noenhanced font ",10"
set datafile missing "NaN"
set grid ytics
set style fill solid 0.8 border -1

set output "$DOCS/context.png"
set title "Go context benchmarks: ringctx / Go time per op (log scale; below 1 = ringctx faster)"
set logscale y
set ylabel "ratio ringctx / Go"
set xtics rotate by -50 scale 0
set bmargin 16
set rmargin 12
set style data histogram
set style histogram clustered gap 1
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead lc rgb "black" dt 2
set arrow 2 from graph 0, first 0.5 to graph 1, first 0.5 nohead lc rgb "dark-green" dt 3
plot "$OUT/plot_context.dat" using 2:xtic(1) title "ringctx / Go" lc rgb "#3070b0"
unset arrow 1
unset arrow 2
set bmargin
set rmargin

set terminal pngcairo size 900,550 noenhanced font ",10"
set output "$DOCS/nop.png"
set title "NOP submit + complete per request"
unset logscale y
set xtics norotate
set xlabel "requests per submit (batch)"
set ylabel "ns per request"
set yrange [0:*]
plot "$OUT/plot_nop.dat" using 2:xtic(1) title "raw liburing" lc rgb "#909090", \
     "" using 3 title "ringctx (tracked, cancellable context)" lc rgb "#3070b0"
set yrange [*:*]

set output "$DOCS/cancel.png"
set style data linespoints
set title "Cancelling N in-flight socket receives: cancel start -> last completion"
set logscale xy
set xlabel "N in-flight receives"
set ylabel "ms"
plot "$OUT/plot_cancel.dat" using 1:2 title "ringctx: rctx_cancel(root)" lw 2 pt 7 lc rgb "#3070b0", \
     "" using 1:3 title "raw liburing: batched per-request cancels" lw 2 pt 5 lc rgb "#909090", \
     "" using 1:4 title "raw liburing: one ANY|ALL cancel" lw 2 pt 9 lc rgb "#c04040"

set output "$DOCS/e2e.png"
unset logscale
set style data histogram
set title "End-to-end: cancel N blocked socket readers under one context"
set xlabel "N blocked readers"
set ylabel "ms, cancel -> all returned"
set yrange [0:*]
plot "$OUT/plot_e2e.dat" using 2:xtic(1) title "Go 1.19 (goroutines + watcher)" lc rgb "#909090", \
     "" using 3 title "ringctx (one ring)" lc rgb "#3070b0", \
     "" using 4 title "ringctx (one ring per CPU)" lc rgb "#30a060"
EOF
else
	echo "run.sh: gnuplot not installed: no plots" >&2
fi

echo
echo "results: $RESULTS, $DOCS/results.csv, $DOCS/results.md, $DOCS/*.png"
echo "run.sh: done in $(( $(date +%s) - start )) s ($MODE mode)"
exit $status
