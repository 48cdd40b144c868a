# ringctx - GNU Make build.
#
#   make                 libraries and tools (build/)
#   make check           test suite: plain, ASan+UBSan, TSan (threaded tests)
#   make demo            the main job: tools/ringctx-demo on this machine
#   make bench           benchmarks against Go's context and raw liburing
#   make install PREFIX=/usr/local
#   V=1                  show full commands
#
# As root, the targets that need Debian packages install the missing ones.

PREFIX  ?= /usr/local
CC      ?= cc
VERSION := 0.1.0
SOMAJOR := 0

ifeq ($(V),1)
Q :=
else
Q := @
endif

BUILD   := build
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Wshadow -Wno-unused-parameter -pthread
CPPFLAGS += -Iinclude -D_GNU_SOURCE
LIBS    := -luring -lpthread

DEPS_BUILD := liburing-dev
DEPS_CHECK := liburing-dev libcriterion-dev libfuse3-dev fuse3 pkg-config valgrind
DEPS_BENCH := liburing-dev golang-go gnuplot-nox
FUSE_CFLAGS = $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS   = $(shell pkg-config --libs fuse3 2>/dev/null)

LIB_SRCS := $(wildcard lib/*.c)
TEST_SRCS := $(filter-out tests/test_fault.c,$(wildcard tests/test_*.c))
TOOL_SRCS := $(wildcard tools/*.c)
BENCH_SRCS := $(wildcard bench/bench_*.c)
# Tests that exercise threads, run again under ThreadSanitizer.
TSAN_TESTS := $(basename $(notdir $(wildcard tests/test_thread*.c)))

.PHONY: all deps-build deps-check deps-bench check check-plain check-asan \
	check-tsan check-fault check-valgrind check-install check-symbols demo bench bench-quick man install clean
.DEFAULT_GOAL := all

# One build directory per flavour: $(BUILD)/plain, $(BUILD)/asan, $(BUILD)/tsan.
define flavour
$(1)_DIR    := $(BUILD)/$(1)
$(1)_OBJS   := $$(patsubst lib/%.c,$$($(1)_DIR)/lib/%.o,$$(LIB_SRCS))
$(1)_PICOBJS:= $$(patsubst lib/%.c,$$($(1)_DIR)/pic/%.o,$$(LIB_SRCS))
$(1)_TESTS  := $$(patsubst tests/%.c,$$($(1)_DIR)/tests/%,$$(TEST_SRCS))

$$($(1)_DIR)/lib/%.o: lib/%.c lib/*.h include/ringctx.h | $$($(1)_DIR)/lib
	@$$(if $$(Q),echo "  CC      $$@")
	$$(Q)$$(CC) $$(CPPFLAGS) $$(CFLAGS) $(2) -fvisibility=hidden -c -o $$@ $$<
$$($(1)_DIR)/pic/%.o: lib/%.c lib/*.h include/ringctx.h | $$($(1)_DIR)/pic
	@$$(if $$(Q),echo "  CC      $$@")
	$$(Q)$$(CC) $$(CPPFLAGS) $$(CFLAGS) $(2) -fPIC -fvisibility=hidden -c -o $$@ $$<
$$($(1)_DIR)/libringctx.a: $$($(1)_OBJS)
	@$$(if $$(Q),echo "  AR      $$@")
	$$(Q)rm -f $$@ && ar rcs $$@ $$^
$$($(1)_DIR)/tests/%: tests/%.c tests/*.h $$($(1)_DIR)/libringctx.a | $$($(1)_DIR)/tests
	@$$(if $$(Q),echo "  CC      $$@")
	$$(Q)$$(CC) $$(CPPFLAGS) $(3) -Itests $$(CFLAGS) $(2) $$(FUSE_CFLAGS) -o $$@ $$< \
		$$($(1)_DIR)/libringctx.a $(4) $$(FUSE_LIBS) $$(LIBS)
$$($(1)_DIR)/lib $$($(1)_DIR)/pic $$($(1)_DIR)/tests:
	$$(Q)mkdir -p $$@
endef

SAN_ASAN := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
SAN_TSAN := -O1 -fsanitize=thread
# Criterion cannot start under ThreadSanitizer (its inheritable arena does not
# map): the TSan flavour builds the same tests against tests/shim.
$(eval $(call flavour,plain,,,-lcriterion))
$(eval $(call flavour,asan,$(SAN_ASAN),,-lcriterion))
$(eval $(call flavour,tsan,$(SAN_TSAN),-Itests/shim,))
# Fault injection (lib/fault.h): only tests/test_fault.c, under ASan+UBSan.
$(eval $(call flavour,fault,$(SAN_ASAN) -DRCTX_FAULT_INJECTION,,-lcriterion))

SONAME  := libringctx.so.$(SOMAJOR)
SHLIB   := $(BUILD)/libringctx.so.$(VERSION)
STATIC  := $(plain_DIR)/libringctx.a
TOOLS   := $(patsubst tools/%.c,$(BUILD)/%,$(TOOL_SRCS))
BENCHES := $(patsubst bench/%.c,$(BUILD)/%,$(BENCH_SRCS))

all: deps-build $(STATIC) $(SHLIB) $(TOOLS)

deps-build:
	$(Q)scripts/deps.sh $(DEPS_BUILD)
deps-check:
	$(Q)scripts/deps.sh $(DEPS_CHECK)
deps-bench:
	$(Q)scripts/deps.sh $(DEPS_BENCH)

$(SHLIB): $(plain_PICOBJS) lib/ringctx.map
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-z,defs -Wl,-soname,$(SONAME) -Wl,--version-script=lib/ringctx.map \
		-o $@ $(plain_PICOBJS) $(LIBS)
	$(Q)ln -sf $(notdir $@) $(BUILD)/$(SONAME)
	$(Q)ln -sf $(SONAME) $(BUILD)/libringctx.so

$(BUILD)/%: tools/%.c $(STATIC)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(FUSE_CFLAGS) -Itests -o $@ $< $(STATIC) $(FUSE_LIBS) $(LIBS)

$(BUILD)/bench_%: bench/bench_%.c bench/*.h $(STATIC)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -Ibench -o $@ $< $(STATIC) $(LIBS) -lm

# ---- tests ----------------------------------------------------------------
# Every test binary runs under a hard time limit; CRITERION_OPTS adds options.
RUN_TEST = scripts/run-tests.sh

check: deps-check
	$(Q)$(MAKE) --no-print-directory check-plain check-asan check-tsan check-fault check-valgrind check-install check-symbols

# Nothing but the public API and rctx__ internals is global.
check-symbols: $(STATIC) $(SHLIB)
	$(Q)scripts/check-symbols.sh $(STATIC) $(SHLIB)

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

# Every test under memcheck, but the stuck-disk one: valgrind runs one thread
# at a time, and the in-process FUSE server cannot answer the requests that
# its own process is blocked on. It runs plainly and under ASan.
VALGRIND_TESTS := $(filter-out %/test_stuck_io,$(plain_TESTS))
check-valgrind: $(plain_TESTS)
	$(Q)$(RUN_TEST) valgrind $(VALGRIND_TESTS)

# ---- demo and benchmarks -------------------------------------------------
demo: all
	$(Q)$(BUILD)/ringctx-demo

bench: deps-bench all $(BENCHES)
	$(Q)bench/run.sh $(BUILD)

bench-quick: deps-bench all $(BENCHES)
	$(Q)RCTX_BENCH_QUICK=1 bench/run.sh $(BUILD)

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
