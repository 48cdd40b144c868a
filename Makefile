# ringctx - GNU Make build.
#
#   make                 libraries and tools (build/)
#   make deps            as root: install the Debian packages of every target
#   make check           test suite: plain, ASan+UBSan, TSan (threaded tests)
#   make demo            the main job: tools/ringctx-demo, then ringctx-objd on a hung
#                        disk, then a SQLite query on it (tools/demo-sqlite.sh)
#   make bench           benchmarks against Go's context and raw liburing
#   make soak            SOAK_SECONDS (600) of stress: invariants, RSS, fds (soak-asan)
#   make install PREFIX=/usr/local
#   make fuzz            libFuzzer on the API for FUZZ_SECONDS (default 3600); also
#                        fuzz-parsers, fuzz-http. New inputs go to build/fuzz/corpus-grow
#   make fuzz-merge      add what they found to the corpora under tests/fuzz
#   V=1                  show full commands
#
# make deps, check, demo and bench install the Debian packages they miss when
# run as root (one apt-get update at most), and otherwise print the exact
# apt-get install line. Every other target, make and make install included,
# never installs: it prints what is missing, with that line, and stops
# before any compiler runs.

PREFIX  ?= /usr/local
CC      ?= cc
# The version is written once, in include/ringctx.h.
version_part = $(shell sed -n 's/^\#define RINGCTX_VERSION_$(1) \([0-9]*\)$$/\1/p' include/ringctx.h)
VERSION := $(call version_part,MAJOR).$(call version_part,MINOR).$(call version_part,PATCH)
SOMAJOR := 1

ifeq ($(V),1)
Q :=
else
Q := @
endif

BUILD   := build
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Wshadow -pthread
CPPFLAGS += -Iinclude -D_GNU_SOURCE
LIBS    := -luring -lpthread

DEPS_BUILD := liburing-dev
# libclang-rt-dev: the sanitizer and libFuzzer runtimes of the installed
# clang (scripts/deps.sh picks libclang-rt-N-dev for clang N).
DEPS_CHECK := liburing-dev libcriterion-dev libfuse3-dev fuse3 pkg-config valgrind \
	clang libclang-rt-dev curl apache2-utils python3
DEPS_TESTS := liburing-dev libcriterion-dev
DEPS_FUZZ  := liburing-dev clang libclang-rt-dev
DEPS_BENCH := liburing-dev golang-go gnuplot-nox wrk nginx curl libfuse3-dev fuse3 pkg-config fio python3
# The demo's service scenario needs curl and wrk; without FUSE only its
# stuck-disk parts are skipped.
DEPS_DEMO  := curl wrk libfuse3-dev fuse3 pkg-config
DEPS_DEMO_REQUIRED := curl wrk
DEPS_ALL   := $(sort $(DEPS_BUILD) $(DEPS_CHECK) $(DEPS_BENCH) $(DEPS_DEMO))
DEPS_SH    := scripts/deps.sh

# support/: code the tests and tools share. The stuck-disk file system needs
# libfuse3; without it, support/stuckfs-none.c says so at run time.
HAVE_FUSE   := $(shell pkg-config --exists fuse3 2>/dev/null && echo 1)
ifeq ($(HAVE_FUSE),1)
FUSE_CFLAGS := $(shell pkg-config --cflags fuse3)
FUSE_LIBS   := $(shell pkg-config --libs fuse3)
SUPPORT_SRCS := $(filter-out support/stuckfs-none.c,$(wildcard support/*.c))
else
FUSE_CFLAGS :=
FUSE_LIBS   :=
SUPPORT_SRCS := $(filter-out support/stuckfs.c support/stuckfs-server.c support/stuckfs-ops.c,$(wildcard support/*.c))
endif

LIB_SRCS := $(wildcard lib/*.c)
TEST_SRCS := $(filter-out tests/test_fault.c,$(wildcard tests/test_*.c))
TOOL_SRCS := $(wildcard tools/*.c)
# bench_sqlite and docs/examples/sqlite_*.c need SQLite: the SQLite part
# below builds them.
BENCH_SRCS := $(filter-out bench/bench_sqlite.c,$(wildcard bench/bench_*.c))
EXAMPLE_SRCS := $(filter-out docs/examples/sqlite_%.c,$(wildcard docs/examples/*.c))
# Tests that exercise threads run again under ThreadSanitizer: each says so
# with a line of its own, /* tsan: yes */, after its Description comment.
TSAN_TESTS := $(basename $(notdir $(shell grep -l '^/\* tsan: yes \*/$$' $(TEST_SRCS))))

.PHONY: all deps deps-check deps-bench deps-demo need-build need-tests need-fuzz need-bench \
	FORCE check check-plain check-asan \
	check-tsan check-fault check-examples check-valgrind check-install check-symbols check-layers demo bench bench-quick \
	soak soak-asan man install clean fuzz check-fuzz check-objd check-fuzz-http fuzz-http
.DEFAULT_GOAL := all

# One build directory per flavour: $(BUILD)/plain, $(BUILD)/asan, $(BUILD)/tsan.
define flavour
$(1)_DIR    := $(BUILD)/$(1)
$(1)_OBJS   := $$(patsubst lib/%.c,$$($(1)_DIR)/lib/%.o,$$(LIB_SRCS))
$(1)_TESTS  := $$(patsubst tests/%.c,$$($(1)_DIR)/tests/%,$$(TEST_SRCS))
$(1)_SUPPORT:= $$($(1)_DIR)/libsupport.a

$$($(1)_DIR)/lib/%.o: lib/%.c lib/*.h include/ringctx.h | need-build $$($(1)_DIR)/lib
	@$$(if $$(Q),echo "  CC      $$@")
	$$(Q)$$(CC) $$(CPPFLAGS) $$(CFLAGS) $(2) -fvisibility=hidden -c -o $$@ $$<
$$($(1)_DIR)/libringctx.a: $$($(1)_OBJS)
	@$$(if $$(Q),echo "  AR      $$@")
	$$(Q)rm -f $$@ && ar rcs $$@ $$^
$$($(1)_DIR)/support/%.o: support/%.c support/*.h $(BUILD)/support.cfg | need-build $$($(1)_DIR)/support
	@$$(if $$(Q),echo "  CC      $$@")
	$$(Q)$$(CC) $$(CPPFLAGS) $$(CFLAGS) $(2) $$(FUSE_CFLAGS) -c -o $$@ $$<
$$($(1)_SUPPORT): $$(patsubst support/%.c,$$($(1)_DIR)/support/%.o,$$(SUPPORT_SRCS))
	@$$(if $$(Q),echo "  AR      $$@")
	$$(Q)rm -f $$@ && ar rcs $$@ $$^
$$($(1)_DIR)/tests/%: tests/%.c tests/*.h support/*.h $$($(1)_DIR)/libringctx.a $$($(1)_SUPPORT) \
		| need-tests $$($(1)_DIR)/tests
	@$$(if $$(Q),echo "  CC      $$@")
	$$(Q)$$(CC) $$(CPPFLAGS) $(3) -Itests -Isupport $$(CFLAGS) $(2) -o $$@ $$< \
		$$($(1)_SUPPORT) $$($(1)_DIR)/libringctx.a $(4) $$(FUSE_LIBS) $$(LIBS)
$$($(1)_DIR)/lib $$($(1)_DIR)/tests $$($(1)_DIR)/support:
	$$(Q)mkdir -p $$@
endef

# The sanitizer flavours also check the library's invariants (RCTX_ASSERT).
SAN_ASAN := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	-DRCTX_DEBUG
SAN_TSAN := -O1 -fsanitize=thread -DRCTX_DEBUG
# Criterion cannot start under ThreadSanitizer (its inheritable arena does not
# map): the TSan flavour builds the same tests against tests/shim.
$(eval $(call flavour,plain,,,-lcriterion))
$(eval $(call flavour,asan,$(SAN_ASAN),,-lcriterion))
$(eval $(call flavour,tsan,$(SAN_TSAN),-Itests/shim,))
# Fault injection (lib/fault.h): only tests/test_fault.c, under ASan+UBSan.
$(eval $(call flavour,fault,$(SAN_ASAN) -DRCTX_FAULT_INJECTION,,-lcriterion))

# The shared library: position-independent objects, plain flavour only.
plain_PICOBJS := $(patsubst lib/%.c,$(plain_DIR)/pic/%.o,$(LIB_SRCS))
$(plain_DIR)/pic/%.o: lib/%.c lib/*.h include/ringctx.h | need-build $(plain_DIR)/pic
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<
$(plain_DIR)/pic:
	$(Q)mkdir -p $@

SONAME  := libringctx.so.$(SOMAJOR)
SHLIB   := $(BUILD)/libringctx.so.$(VERSION)
STATIC  := $(plain_DIR)/libringctx.a
TOOLS   := $(patsubst tools/%.c,$(BUILD)/%,$(TOOL_SRCS))
BENCHES := $(patsubst bench/%.c,$(BUILD)/%,$(BENCH_SRCS))
# The examples of docs/patterns.md, against the plain and ASan libraries.
EXAMPLES := $(foreach f,plain asan,$(patsubst docs/examples/%.c,$(BUILD)/$(f)/examples/%,$(EXAMPLE_SRCS)))
# ringctx-objd is built from several files (tools/objd/), apart from TOOL_SRCS.
OBJD_SRCS := $(wildcard tools/objd/*.c)
OBJD      := $(BUILD)/ringctx-objd

all: $(STATIC) $(SHLIB) $(TOOLS) $(OBJD)

# Installing (as root): make deps, and the first step of check, demo and
# bench, which then build in a new make (that sees what was installed).
deps:
	$(Q)$(DEPS_SH) --install $(DEPS_ALL)
	@echo "deps: every package of every target is present"
deps-demo:
	$(Q)$(DEPS_SH) --install $(DEPS_BUILD) $(DEPS_DEMO_REQUIRED) --optional \
		$(filter-out $(DEPS_DEMO_REQUIRED),$(DEPS_DEMO))
deps-check:
	$(Q)$(DEPS_SH) --install $(DEPS_CHECK)
deps-bench:
	$(Q)$(DEPS_SH) --install $(DEPS_BENCH)
# Checking only: every compile waits for one of these (an order-only
# prerequisite), so that even under -j nothing is compiled before the
# packages are known to be there, and a missing one stops the build.
need-build:
	$(Q)$(DEPS_SH) $(DEPS_BUILD)
need-tests:
	$(Q)$(DEPS_SH) $(DEPS_TESTS)
need-fuzz:
	$(Q)$(DEPS_SH) $(DEPS_FUZZ)
need-bench:
	$(Q)$(DEPS_SH) $(DEPS_BENCH)

$(SHLIB): $(plain_PICOBJS) lib/ringctx.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-z,defs -Wl,-soname,$(SONAME) -Wl,--version-script=lib/ringctx.map \
		-o $@ $(plain_PICOBJS) $(LIBS)
	$(Q)ln -sf $(notdir $@) $(BUILD)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(BUILD)/libringctx.so

$(BUILD)/%: tools/%.c support/*.h $(STATIC) $(plain_SUPPORT) | need-build
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -Isupport -o $@ $< $(plain_SUPPORT) $(STATIC) $(FUSE_LIBS) $(LIBS)

# ringctx-objd, the HTTP object server: every file of tools/objd/.
$(OBJD): $(OBJD_SRCS) tools/objd/*.h $(STATIC) | need-build
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -Itools/objd -o $@ $(OBJD_SRCS) $(STATIC) $(LIBS)

# Records which stuckfs is built, so that everything is rebuilt when
# libfuse3 appears or goes away.
$(BUILD)/support.cfg: FORCE
	$(Q)mkdir -p $(BUILD) && echo '$(SUPPORT_SRCS) $(FUSE_CFLAGS) $(FUSE_LIBS)' > $@.new && \
	if cmp -s $@ $@.new; then rm $@.new; else mv $@.new $@; fi
FORCE:

$(BUILD)/bench_%: bench/bench_%.c bench/*.h $(STATIC) | need-build
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -Ibench -o $@ $< $(STATIC) $(LIBS) -lm
# bench_isolation mounts the stuck-disk file system (support/stuckfs.h).
$(BUILD)/bench_isolation: bench/bench_isolation.c bench/*.h support/*.h $(STATIC) $(plain_SUPPORT) | need-build
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -Ibench -Isupport -o $@ $< $(plain_SUPPORT) $(STATIC) \
		$(FUSE_LIBS) $(LIBS) -lm

$(BUILD)/plain/examples/%: docs/examples/%.c include/ringctx.h $(STATIC) | need-build
	@$(if $(Q),echo "  CC      $@")
	$(Q)mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(CFLAGS) -o $@ $< $(STATIC) $(LIBS)
$(BUILD)/asan/examples/%: docs/examples/%.c include/ringctx.h $(asan_DIR)/libringctx.a | need-build
	@$(if $(Q),echo "  CC      $@")
	$(Q)mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(CFLAGS) $(SAN_ASAN) -o $@ $< $(asan_DIR)/libringctx.a $(LIBS)

# ---- tests ----------------------------------------------------------------
# Every test binary runs under a hard time limit; CRITERION_OPTS adds options.
RUN_TEST = scripts/run-tests.sh
# One passed step, counted in make check's last line.
summary = [ -z "$$RCTX_CHECK_SUMMARY" ] || echo "$(1) 1 0 0" >>"$$RCTX_CHECK_SUMMARY";

# Every step adds its counts to $(SUMMARY); the last line adds them up.
SUMMARY := $(abspath $(BUILD))/check.summary
# Everything is built first, two compilers at a time; the fuzz smokes and
# the SQLite VFS's tests (one core) run beside valgrind.
CHECK_BINS = $(plain_TESTS) $(asan_TESTS) $(addprefix $(tsan_DIR)/tests/,$(TSAN_TESTS)) \
	$(fault_DIR)/tests/test_fault $(STATIC) $(SHLIB) $(TOOLS) $(EXAMPLES) $(OBJD) $(BUILD)/objd-stuckfs \
	$(FUZZ_DIR)/fuzz_api $(FUZZ_DIR)/fuzz_parsers $(FUZZ_DIR)/fuzz_http $(RS_BINS)
CHECK_MAKE = RCTX_CHECK_SUMMARY=$(SUMMARY) $(MAKE) --no-print-directory
check: deps-check
	$(Q)mkdir -p $(BUILD) && rm -f $(SUMMARY)
	$(Q)$(MAKE) --no-print-directory -j2 $(CHECK_BINS)
	$(Q)$(CHECK_MAKE) check-plain check-asan check-tsan check-fault check-examples check-objd
	$(Q)$(CHECK_MAKE) -j2 --output-sync=target check-valgrind check-fuzz check-fuzz-http check-sqlite
	$(Q)$(CHECK_MAKE) check-install check-symbols check-layers
	$(Q)awk '{ p += $$2; f += $$3; s += $$4 } END { printf "check: %d passed, %d failed, %d skipped\n", p, f, s }' $(SUMMARY)

# Nothing but the public API and rctx__ internals is global.
check-symbols: $(STATIC) $(SHLIB)
	$(Q)scripts/check-symbols.sh $(STATIC) $(SHLIB)
	$(Q)$(call summary,symbols)

# The file graph of lib/ has no cycle but the inherent ones, each listed with
# its reason in scripts/lib-graph.py and docs/design.md ("Layering").
check-layers:
	$(Q)mkdir -p $(BUILD) && python3 scripts/lib-graph.py >$(BUILD)/layers.log || \
		{ cat $(BUILD)/layers.log; echo "layers: 0 passed, 1 failed"; exit 1; }
	$(Q)tail -n 1 $(BUILD)/layers.log
	$(Q)$(call summary,layers)

# Install into a staging tree and build a program against it with pkg-config,
# statically and against the shared library.
STAGE := $(CURDIR)/$(BUILD)/stage
check-install: all
	$(Q)rm -rf $(STAGE) && $(MAKE) --no-print-directory -s install PREFIX=$(STAGE) >/dev/null
	$(Q)PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig; export PKG_CONFIG_PATH; \
	$(CC) -o $(BUILD)/install-smoke tests/install_smoke.c $$(pkg-config --cflags --libs ringctx) \
		-Wl,-rpath,$(STAGE)/lib && $(BUILD)/install-smoke shared && \
	$(CC) -o $(BUILD)/install-smoke-static tests/install_smoke.c $$(pkg-config --cflags ringctx) \
		$(STAGE)/lib/libringctx.a $$(pkg-config --libs-only-l --static ringctx | sed 's/-lringctx//') && \
	$(BUILD)/install-smoke-static static
	$(Q)$(call summary,install) $(call summary,install)

check-plain: $(plain_TESTS) $(TOOLS)
	$(Q)$(RUN_TEST) plain $(plain_TESTS)

check-asan: $(asan_TESTS)
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(RUN_TEST) asan+ubsan $(asan_TESTS)

check-tsan: $(addprefix $(tsan_DIR)/tests/,$(TSAN_TESTS))
	$(Q)TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp \
		$(RUN_TEST) tsan $^

check-fault: $(fault_DIR)/tests/test_fault
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(RUN_TEST) fault $^

# Every example of docs/patterns.md runs and shows what it says.
check-examples: $(EXAMPLES)
	$(Q)scripts/run-examples.sh plain $(filter $(BUILD)/plain/%,$^)
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		scripts/run-examples.sh asan $(filter $(BUILD)/asan/%,$^)
	$(Q)$(MAKE) --no-print-directory check-examples-sqlite

# ringctx-objd end to end, with curl (tests/objd/run.sh counts its checks).
# $(BUILD)/objd-stuckfs mounts the stuck-disk file system for it.
$(BUILD)/objd-stuckfs: tests/objd/stuckfs-mount.c support/*.h $(plain_SUPPORT) | need-build
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -Isupport -o $@ $< $(plain_SUPPORT) $(FUSE_LIBS) $(LIBS)
check-objd: $(OBJD) $(BUILD)/objd-stuckfs
	$(Q)tests/objd/run.sh $(OBJD) $(BUILD)/objd-stuckfs

# Every test under memcheck.
check-valgrind: $(plain_TESTS)
	$(Q)$(RUN_TEST) valgrind $(plain_TESTS)

# ---- soak: long stress, not part of check ----------------------------------
SOAK_SECONDS ?= 600
SOAK_THREADS ?= 4
SOAK_ENV = SOAK_SECONDS=$(SOAK_SECONDS) SOAK_THREADS=$(SOAK_THREADS)

$(BUILD)/plain/soak $(BUILD)/asan/soak: $(BUILD)/%/soak: tests/soak.c $(BUILD)/%/libringctx.a | need-build
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(if $(filter asan,$*),$(SAN_ASAN)) -o $@ $< \
		$(BUILD)/$*/libringctx.a $(LIBS)

soak: $(BUILD)/plain/soak
	$(Q)$(SOAK_ENV) $(BUILD)/plain/soak

# Sanitizers keep freed memory in quarantine: RSS is reported, not judged.
soak-asan: $(BUILD)/asan/soak
	$(Q)$(SOAK_ENV) SOAK_RSS_CHECK=0 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(BUILD)/asan/soak

# ---- fuzzing -------------------------------------------------------------
# A libFuzzer target over the whole API (tests/fuzz/fuzz_api.c), built with
# clang and ASan+UBSan in its own directory. `make fuzz` runs it for
# FUZZ_SECONDS on the committed corpus (tests/fuzz/corpus, read only) and
# writes what it finds new to $(FUZZ_GROW)/api; `make fuzz-merge` adds to the
# committed corpora what covers something new. check-fuzz is a 30-second
# smoke on a copy of the corpus, and the parsers' run (check-fuzz-parsers).
FUZZ_CC      := clang
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_SAN     := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined -DRCTX_DEBUG -DRCTX_NO_POOL
FUZZ_OBJS    := $(patsubst lib/%.c,$(FUZZ_DIR)/lib/%.o,$(LIB_SRCS))
FUZZ_SECONDS ?= 3600
FUZZ_GROW    := $(FUZZ_DIR)/corpus-grow
FUZZ_RUN      = ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=64 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(FUZZ_DIR)/fuzz_api -detect_leaks=1 -max_len=512 -timeout=60 -print_final_stats=1 \
	-artifact_prefix=$(FUZZ_DIR)/

$(FUZZ_DIR)/lib/%.o: lib/%.c lib/*.h include/ringctx.h | need-fuzz $(FUZZ_DIR)/lib
	@$(if $(Q),echo "  CLANG   $@")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) -std=gnu11 -Wall -Wextra -pthread \
		$(FUZZ_SAN) -fsanitize=fuzzer-no-link -fvisibility=hidden -c -o $@ $<
$(FUZZ_DIR)/fuzz_api: tests/fuzz/fuzz_api.c $(FUZZ_OBJS) | need-fuzz
	@$(if $(Q),echo "  CLANG   $@")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) -std=gnu11 -Wall -Wextra -pthread \
		$(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(LIBS)
$(FUZZ_DIR)/lib:
	$(Q)mkdir -p $@

fuzz: $(FUZZ_DIR)/fuzz_api
	$(Q)mkdir -p $(FUZZ_GROW)/api
	$(Q)$(FUZZ_RUN) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_GROW)/api tests/fuzz/corpus

check-fuzz: $(FUZZ_DIR)/fuzz_api check-fuzz-parsers
	$(Q)rm -rf $(FUZZ_DIR)/corpus && cp -r tests/fuzz/corpus $(FUZZ_DIR)/corpus
	$(Q)$(FUZZ_RUN) -max_total_time=30 $(FUZZ_DIR)/corpus >$(FUZZ_DIR)/smoke.log 2>&1 || \
		{ cat $(FUZZ_DIR)/smoke.log; echo "fuzz: 0 passed, 1 failed"; exit 1; }
	$(Q)sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) .*/  fuzz: 30 s smoke: \1 inputs, no failure (\2 s)/p' $(FUZZ_DIR)/smoke.log
	$(Q)$(call summary,fuzz)

# The header parsers of propagation (tests/fuzz/fuzz_parsers.c): `make
# fuzz-parsers` runs on tests/fuzz/corpus-parsers and grows
# $(FUZZ_GROW)/parsers; check-fuzz-parsers (part of check-fuzz) runs a fixed
# number of inputs, a few seconds.
FUZZ_PARSERS_RUN = ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	$(FUZZ_DIR)/fuzz_parsers -detect_leaks=1 -max_len=128 -print_final_stats=1 \
	-artifact_prefix=$(FUZZ_DIR)/parsers-
.PHONY: fuzz-parsers check-fuzz-parsers
$(FUZZ_DIR)/fuzz_parsers: tests/fuzz/fuzz_parsers.c $(FUZZ_OBJS) | need-fuzz
	@$(if $(Q),echo "  CLANG   $@")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) -std=gnu11 -Wall -Wextra -pthread \
		$(FUZZ_SAN) -fsanitize=fuzzer -o $@ $< $(FUZZ_OBJS) $(LIBS)

fuzz-parsers: $(FUZZ_DIR)/fuzz_parsers
	$(Q)mkdir -p $(FUZZ_GROW)/parsers
	$(Q)$(FUZZ_PARSERS_RUN) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_GROW)/parsers \
		tests/fuzz/corpus-parsers

check-fuzz-parsers: $(FUZZ_DIR)/fuzz_parsers
	$(Q)rm -rf $(FUZZ_DIR)/corpus-parsers && cp -r tests/fuzz/corpus-parsers $(FUZZ_DIR)/corpus-parsers
	$(Q)$(FUZZ_PARSERS_RUN) -runs=300000 $(FUZZ_DIR)/corpus-parsers >$(FUZZ_DIR)/parsers.log 2>&1 || \
		{ cat $(FUZZ_DIR)/parsers.log; echo "fuzz-parsers: 0 passed, 1 failed"; exit 1; }
	$(Q)sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) .*/  fuzz-parsers: \1 inputs, no failure (\2 s)/p' $(FUZZ_DIR)/parsers.log
	$(Q)$(call summary,fuzz-parsers)

# The HTTP request parser of ringctx-objd (tools/objd/http.c), alone: a
# 15-second smoke in check, `make fuzz-http` for longer (growing
# $(FUZZ_GROW)/http).
FUZZ_HTTP_RUN = UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(FUZZ_DIR)/fuzz_http \
	-max_len=4096 -timeout=10 -print_final_stats=1 -artifact_prefix=$(FUZZ_DIR)/http-
$(FUZZ_DIR)/fuzz_http: tests/fuzz/fuzz_http.c tools/objd/http.c tools/objd/path.c tools/objd/*.h | need-fuzz $(FUZZ_DIR)/lib
	@$(if $(Q),echo "  CLANG   $@")
	$(Q)$(FUZZ_CC) $(CPPFLAGS) -Itools/objd -std=gnu11 -Wall -Wextra $(FUZZ_SAN) -fsanitize=fuzzer \
		-o $@ $< tools/objd/http.c tools/objd/path.c

fuzz-http: $(FUZZ_DIR)/fuzz_http
	$(Q)mkdir -p $(FUZZ_GROW)/http
	$(Q)$(FUZZ_HTTP_RUN) -max_total_time=$(FUZZ_SECONDS) $(FUZZ_GROW)/http tests/fuzz/corpus-http

check-fuzz-http: $(FUZZ_DIR)/fuzz_http
	$(Q)rm -rf $(FUZZ_DIR)/corpus-http && cp -r tests/fuzz/corpus-http $(FUZZ_DIR)/corpus-http
	$(Q)$(FUZZ_HTTP_RUN) -max_total_time=15 $(FUZZ_DIR)/corpus-http >$(FUZZ_DIR)/smoke-http.log 2>&1 || \
		{ cat $(FUZZ_DIR)/smoke-http.log; echo "fuzz-http: 0 passed, 1 failed"; exit 1; }
	$(Q)sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) .*/  fuzz-http: 15 s smoke: \1 inputs, no failure (\2 s)/p' \
		$(FUZZ_DIR)/smoke-http.log
	$(Q)$(call summary,fuzz-http)

# What the fuzz runs found, into the committed corpora: libFuzzer's
# -merge=1 adds only the inputs that cover something the corpus does not,
# for each fuzzer that has run (that has a directory in $(FUZZ_GROW)).
FUZZ_GROWN := $(notdir $(wildcard $(FUZZ_GROW)/*))
.PHONY: fuzz-merge fuzz-merge-api fuzz-merge-parsers fuzz-merge-http
fuzz-merge: $(addprefix fuzz-merge-,$(FUZZ_GROWN))
	@$(if $(FUZZ_GROWN),:,echo "fuzz-merge: nothing to merge (make fuzz, fuzz-parsers or fuzz-http first)")
# $(call fuzz_merge,name,run,committed corpus)
fuzz_merge = $(2) -merge=1 $(3) $(FUZZ_GROW)/$(1) >$(FUZZ_DIR)/merge-$(1).log 2>&1 || \
		{ cat $(FUZZ_DIR)/merge-$(1).log; exit 1; }; \
	sed -n 's|^MERGE-OUTER: \([0-9]*\) new files.*|fuzz-merge: \1 new inputs in $(3)|p' \
		$(FUZZ_DIR)/merge-$(1).log
fuzz-merge-api: $(FUZZ_DIR)/fuzz_api
	$(Q)$(call fuzz_merge,api,$(FUZZ_RUN),tests/fuzz/corpus)
fuzz-merge-parsers: $(FUZZ_DIR)/fuzz_parsers
	$(Q)$(call fuzz_merge,parsers,$(FUZZ_PARSERS_RUN),tests/fuzz/corpus-parsers)
fuzz-merge-http: $(FUZZ_DIR)/fuzz_http
	$(Q)$(call fuzz_merge,http,$(FUZZ_HTTP_RUN),tests/fuzz/corpus-http)

# ---- demo and benchmarks -------------------------------------------------
# A new make, so that it sees the libfuse3 the first one installed. Then
# the context-tree demo, ringctx-objd serving while the disk hangs
# (tools/demo-service.sh), and a SQLite query on a hung disk against the
# stock sqlite3 shell (tools/demo-sqlite.sh: it says why it skips when
# SQLite or FUSE is missing).
demo: deps-demo
	$(Q)$(MAKE) --no-print-directory demo-build
	$(Q)$(BUILD)/ringctx-demo
	$(Q)tools/demo-service.sh $(OBJD) $(BUILD)/objd-stuckfs
	$(Q)tools/demo-sqlite.sh $(BUILD)/plain/examples/sqlite_deadline $(BUILD)/objd-stuckfs \
		$(BUILD)/sqlite/rctxvfs.so
.PHONY: demo-build
demo-build: all $(BUILD)/objd-stuckfs

bench: deps-bench
	$(Q)$(MAKE) --no-print-directory bench-build
	$(Q)bench/run.sh $(BUILD)

bench-quick: need-bench
	$(Q)$(MAKE) --no-print-directory bench-build
	$(Q)RCTX_BENCH_QUICK=1 bench/run.sh $(BUILD)
.PHONY: bench-build
bench-build: all $(BENCHES) $(BUILD)/objd-stuckfs

# Man pages are generated from the header's comments and committed.
man:
	$(Q)scripts/gen-man.py

# ---- install ---------------------------------------------------------------
install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig \
		$(DESTDIR)$(PREFIX)/share/man/man3 $(DESTDIR)$(PREFIX)/share/man/man7
	install -m 644 include/ringctx.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHLIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libringctx.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libringctx.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' ringctx.pc.in \
		> $(DESTDIR)$(PREFIX)/lib/pkgconfig/ringctx.pc
	install -m 644 docs/man/*.3 $(DESTDIR)$(PREFIX)/share/man/man3/
	install -m 644 docs/man/*.7 $(DESTDIR)$(PREFIX)/share/man/man7/

clean:
	rm -rf $(BUILD)

# ---- SQLite: the ringctx VFS (contrib/sqlite/, include/ringctx_sqlite.h) ----
# Built when `pkg-config sqlite3` finds SQLite (Debian: libsqlite3-dev);
# otherwise its targets say why and do nothing.
#   build/sqlite/libringctx_sqlite.{a,so}   the VFS library
#   build/sqlite/rctxvfs.so                 the extension: sqlite3 shell `.load`
#   build/{plain,asan}/sqlite/test_*        tests/sqlite/, run by check-sqlite
#   build/{plain,asan}/examples/sqlite_*    docs/examples/sqlite_*.c, run by
#                                           check-examples (and exec'd by the tests)
DEPS_CHECK += libsqlite3-dev sqlite3
# the stuck-disk episode's peers: Python's sqlite3 module, Go's database/sql
# with mattn/go-sqlite3 (cgo, against the same libsqlite3)
DEPS_BENCH += libsqlite3-dev sqlite3 python3 golang-github-mattn-go-sqlite3-dev
DEPS_DEMO  += libsqlite3-dev sqlite3
HAVE_SQLITE := $(shell pkg-config --exists sqlite3 2>/dev/null && echo 1)
SQLITE_DIR  := $(BUILD)/sqlite
RS_SRCS     := contrib/sqlite/fd.c contrib/sqlite/vfs.c contrib/sqlite/bind.c contrib/sqlite/defer.c
RS_TESTS    := $(basename $(notdir $(wildcard tests/sqlite/test_*.c)))
RS_HDRS     := contrib/sqlite/*.h include/ringctx_sqlite.h include/ringctx.h
.PHONY: sqlite check-sqlite check-sqlite-plain check-sqlite-asan check-sqlite-valgrind \
	check-examples-sqlite
RS_EXAMPLE_SRCS := $(wildcard docs/examples/sqlite_*.c)

ifeq ($(HAVE_SQLITE),1)
SQLITE_CFLAGS := $(shell pkg-config --cflags sqlite3)
SQLITE_LIBS   := $(shell pkg-config --libs sqlite3)
RS_LIB    := $(SQLITE_DIR)/libringctx_sqlite.a
RS_SHLIB  := $(SQLITE_DIR)/libringctx_sqlite.so
RS_EXT    := $(SQLITE_DIR)/rctxvfs.so
RS_EXAMPLES := $(foreach f,plain asan,$(patsubst docs/examples/%.c,$(BUILD)/$(f)/examples/%,$(RS_EXAMPLE_SRCS)))
RS_BINS    = $(RS_LIB) $(RS_SHLIB) $(RS_EXT) $(foreach f,plain asan,$(addprefix $(BUILD)/$(f)/sqlite/,$(RS_TESTS))) \
	$(RS_EXAMPLES)

# The VFS objects of a flavour ($(1): plain or asan, $(2): its flags), the
# examples and the tests of tests/sqlite/ against them. The tests exec the
# plain sqlite_deadline example, and the stock shell loads the extension
# (their absolute paths compiled in). Not the ASan example: at exit,
# LeakSanitizer stops every thread of the process, and an io-wq worker that
# a hung disk holds never stops, so a sanitized program cannot exit then.
define sqlite_flavour
$(BUILD)/$(1)/sqlite/%.o: contrib/sqlite/%.c $(RS_HDRS) | $(BUILD)/$(1)/sqlite
	@$$(if $$(Q),echo "  CC      $$@")
	$$(Q)$$(CC) $$(CPPFLAGS) $$(CFLAGS) $(2) -fPIC $$(SQLITE_CFLAGS) -c -o $$@ $$<
$(BUILD)/$(1)/sqlite/libringctx_sqlite.a: $(patsubst contrib/sqlite/%.c,$(BUILD)/$(1)/sqlite/%.o,$(RS_SRCS))
	@$$(if $$(Q),echo "  AR      $$@")
	$$(Q)rm -f $$@ && ar rcs $$@ $$^
$(BUILD)/$(1)/examples/sqlite_%: docs/examples/sqlite_%.c $(RS_HDRS) \
		$(BUILD)/$(1)/sqlite/libringctx_sqlite.a $(BUILD)/$(1)/libringctx.a
	@$$(if $$(Q),echo "  CC      $$@")
	$$(Q)mkdir -p $$(@D) && $$(CC) $$(CPPFLAGS) $$(CFLAGS) $(2) $$(SQLITE_CFLAGS) -o $$@ $$< \
		$(BUILD)/$(1)/sqlite/libringctx_sqlite.a $(BUILD)/$(1)/libringctx.a $$(SQLITE_LIBS) $$(LIBS)
$(BUILD)/$(1)/sqlite/test_%: tests/sqlite/test_%.c tests/sqlite/*.h tests/*.h support/*.h \
		$(BUILD)/$(1)/sqlite/libringctx_sqlite.a $(BUILD)/$(1)/libringctx.a $(BUILD)/$(1)/libsupport.a \
		$(BUILD)/plain/examples/sqlite_deadline $(RS_EXT)
	@$$(if $$(Q),echo "  CC      $$@")
	$$(Q)$$(CC) $$(CPPFLAGS) -Itests -Itests/sqlite -Isupport \
		-DRCTX_SQLITE_EXAMPLE='"$(abspath $(BUILD)/plain/examples/sqlite_deadline)"' \
		-DRCTX_SQLITE_EXT='"$(abspath $(RS_EXT))"' \
		$$(CFLAGS) $(2) $$(SQLITE_CFLAGS) -o $$@ $$< \
		$(BUILD)/$(1)/sqlite/libringctx_sqlite.a $(BUILD)/$(1)/libsupport.a $(BUILD)/$(1)/libringctx.a \
		-lcriterion $$(SQLITE_LIBS) $$(FUSE_LIBS) $$(LIBS)
$(BUILD)/$(1)/sqlite:
	$$(Q)mkdir -p $$@
endef
$(eval $(call sqlite_flavour,plain,))
$(eval $(call sqlite_flavour,asan,$(SAN_ASAN)))

$(RS_LIB): $(BUILD)/plain/sqlite/libringctx_sqlite.a
	$(Q)mkdir -p $(@D) && cp $< $@
$(RS_SHLIB): $(patsubst contrib/sqlite/%.c,$(BUILD)/plain/sqlite/%.o,$(RS_SRCS)) $(SHLIB)
	@$(if $(Q),echo "  LD      $@")
	$(Q)mkdir -p $(@D) && $(CC) -shared -Wl,-z,defs -Wl,-soname,libringctx_sqlite.so.$(SOMAJOR) \
		-o $@ $(filter %.o,$^) -L$(BUILD) -lringctx $(SQLITE_LIBS) $(LIBS)
# The extension carries the library (hidden) and reaches SQLite through the
# routine table of the SQLite that loads it.
$(SQLITE_DIR)/ext/%.o: contrib/sqlite/%.c $(RS_HDRS)
	@$(if $(Q),echo "  CC      $@")
	$(Q)mkdir -p $(@D) && $(CC) $(CPPFLAGS) $(CFLAGS) -fPIC -fvisibility=hidden \
		-DRCTX_SQLITE_EXTENSION $(SQLITE_CFLAGS) -c -o $@ $<
$(RS_EXT): $(patsubst contrib/sqlite/%.c,$(SQLITE_DIR)/ext/%.o,$(RS_SRCS) contrib/sqlite/ext.c) $(plain_PICOBJS) \
		contrib/sqlite/rctxvfs.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-z,defs -Wl,--version-script=contrib/sqlite/rctxvfs.map -o $@ \
		$(filter %.o,$^) $(LIBS)

sqlite: $(RS_BINS)

# The SQLite rows of make bench (bench/bench_sqlite.c): the VFS against the
# unix VFS, and the stuck-disk episode (which mounts support/stuckfs.h).
$(BUILD)/bench_sqlite: bench/bench_sqlite.c bench/*.h support/*.h $(RS_LIB) $(STATIC) $(plain_SUPPORT) \
		| need-build
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -Ibench -Isupport $(SQLITE_CFLAGS) -o $@ $< $(RS_LIB) \
		$(plain_SUPPORT) $(STATIC) $(SQLITE_LIBS) $(FUSE_LIBS) $(LIBS) -lm
bench-build: $(BUILD)/bench_sqlite

check-sqlite-plain: $(addprefix $(BUILD)/plain/sqlite/,$(RS_TESTS))
	$(Q)$(RUN_TEST) sqlite-plain $^
check-sqlite-asan: $(addprefix $(BUILD)/asan/sqlite/,$(RS_TESTS))
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(RUN_TEST) sqlite-asan+ubsan $^
check-sqlite-valgrind: $(addprefix $(BUILD)/plain/sqlite/,$(RS_TESTS))
	$(Q)$(RUN_TEST) valgrind $^
check-sqlite: $(RS_BINS)
	$(Q)$(MAKE) --no-print-directory check-sqlite-plain check-sqlite-asan check-sqlite-valgrind

# The SQLite examples, with arguments (scripts/run-sqlite-example.sh).
check-examples-sqlite: $(RS_EXAMPLES)
	$(Q)scripts/run-sqlite-example.sh plain $(filter $(BUILD)/plain/%,$^)
	$(Q)ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		scripts/run-sqlite-example.sh asan $(filter $(BUILD)/asan/%,$^)

# make demo: the example and the extension (tools/demo-sqlite.sh).
demo-build: $(BUILD)/plain/examples/sqlite_deadline $(RS_EXT)
else
sqlite check-sqlite check-examples-sqlite:
	@echo "  SKIP: SQLite VFS: pkg-config sqlite3 found nothing (Debian: libsqlite3-dev)"
endif
