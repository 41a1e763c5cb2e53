# cacreg: register a DoD CAC with a portal account from a terminal.
# Plain GNU make; every library through pkg-config. See README.md.

PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= build
CC      ?= cc
PKG_CONFIG ?= pkg-config

# The core's libraries grow with the core; the bench's are for tests only.
CORE_PKGS  := openssl libpcsclite libp11 p11-kit-1 libcurl jansson
TEST_PKGS  := cmocka
BENCH_PKGS := libcacard libpcsclite

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wformat=2 -Wvla
CFLAGS  ?= -O2 -g
# CPPFLAGS, CFLAGS and LDFLAGS from the environment are honoured (dpkg-buildflags'
# hardening flags among them); WARN comes after CFLAGS so that a plain -Wformat
# there does not lower our -Wformat=2.
P11_MODULE_PATH := $(shell $(PKG_CONFIG) --variable=p11_module_path p11-kit-1)
ALL_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(CPPFLAGS) $(CFLAGS) $(WARN) -Icore -pthread \
             -DP11_MODULE_PATH='"$(P11_MODULE_PATH)"'

# The version, from one place; `cacreg --version` also names the libraries
# that cannot say theirs at run time, as they were at build time.
VERSION := $(strip $(file < VERSION))
VERSION_DEFS = -DCACREG_VERSION='"$(VERSION)"' \
               -DCACREG_LIBP11_VERSION='"$(shell $(PKG_CONFIG) --modversion libp11)"' \
               -DCACREG_PCSCLITE_VERSION='"$(shell $(PKG_CONFIG) --modversion libpcsclite)"' \
               -DCACREG_P11KIT_VERSION='"$(shell $(PKG_CONFIG) --modversion p11-kit-1)"'

SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

pkg_cflags = $(shell $(PKG_CONFIG) --cflags $(1))
pkg_libs   = $(shell $(PKG_CONFIG) --libs $(1))

CORE_SRC  := $(wildcard core/*.c)
TUI_SRC   := $(wildcard tui/*.c)
TUI_PKGS  := jansson ncursesw formw
UNIT_SRC  := $(wildcard tests/unit/test_*.c)

# Two builds of everything we test: plain, and under ASan+UBSan.
VARIANTS  := plain asan
plain_FLAGS :=
asan_FLAGS  := $(SAN)

core_objs  = $(patsubst core/%.c,$(BUILD)/$(1)/core/%.o,$(CORE_SRC))
unit_tests = $(patsubst tests/unit/%.c,$(BUILD)/$(1)/tests/%,$(UNIT_SRC))

BENCH_TOOLS := $(BUILD)/tests/vcacd $(BUILD)/tests/pcscwait $(BUILD)/tests/cardprobe
PKI_STAMP   := $(BUILD)/pki/.stamp

.PHONY: all check check-unit check-bench bench bench-tools deps install uninstall clean \
        lint lint-output fuzz demo soak
.DELETE_ON_ERROR:

all: $(foreach v,$(VARIANTS),$(BUILD)/$(v)/libcacreg.a $(BUILD)/$(v)/cacreg) bench-tools

# Installs the Debian packages when one is missing (quick when none is).
deps:
	@.ci/install-deps

define variant_rules
$(BUILD)/$(1)/core/%.o: core/%.c $(wildcard core/*.h) | $(BUILD)/$(1)/core
	$$(CC) $$(ALL_CFLAGS) $$($(1)_FLAGS) $$(call pkg_cflags,$$(CORE_PKGS)) -c $$< -o $$@

$(BUILD)/$(1)/libcacreg.a: $(call core_objs,$(1))
	$$(AR) rcs $$@ $$^

$(BUILD)/$(1)/cacreg: $(TUI_SRC) $(wildcard tui/*.h) $(wildcard core/*.h) VERSION $(BUILD)/$(1)/libcacreg.a
	$$(CC) $$(ALL_CFLAGS) $$($(1)_FLAGS) $$(VERSION_DEFS) -Itui \
	    $$(call pkg_cflags,$$(TUI_PKGS) $$(CORE_PKGS)) $(TUI_SRC) \
	    $(BUILD)/$(1)/libcacreg.a $$(LDFLAGS) $$(call pkg_libs,$$(TUI_PKGS) $$(CORE_PKGS)) -o $$@

$(BUILD)/$(1)/tests/test_%: tests/unit/test_%.c $(BUILD)/$(1)/libcacreg.a | $(BUILD)/$(1)/tests
	$$(CC) $$(ALL_CFLAGS) $$($(1)_FLAGS) $$(call pkg_cflags,$$(TEST_PKGS) $$(CORE_PKGS)) $$< \
	    $(BUILD)/$(1)/libcacreg.a $$(LDFLAGS) $$(call pkg_libs,$$(TEST_PKGS) $$(CORE_PKGS)) -o $$@

$(BUILD)/$(1)/tests/test_pcsc: tests/bench/test_pcsc.c tests/bench/benchctl.c tests/bench/benchctl.h | $(BUILD)/$(1)/tests
	$$(CC) $$(ALL_CFLAGS) $$($(1)_FLAGS) -Itests/bench $$(call pkg_cflags,$$(TEST_PKGS) libpcsclite) \
	    tests/bench/test_pcsc.c tests/bench/benchctl.c \
	    $$(LDFLAGS) $$(call pkg_libs,$$(TEST_PKGS) libpcsclite) -o $$@

$(BUILD)/$(1)/tests/test_core: tests/bench/test_core.c tests/bench/benchctl.c tests/bench/benchctl.h $(BUILD)/$(1)/libcacreg.a | $(BUILD)/$(1)/tests
	$$(CC) $$(ALL_CFLAGS) $$($(1)_FLAGS) -Itests/bench $$(call pkg_cflags,$$(TEST_PKGS) $$(CORE_PKGS)) \
	    tests/bench/test_core.c tests/bench/benchctl.c $(BUILD)/$(1)/libcacreg.a \
	    $$(LDFLAGS) $$(call pkg_libs,$$(TEST_PKGS) $$(CORE_PKGS)) -o $$@

$(BUILD)/$(1)/core $(BUILD)/$(1)/tests:
	mkdir -p $$@
endef
$(foreach v,$(VARIANTS),$(eval $(call variant_rules,$(v))))

# The bench's own programs are test equipment: built once, not sanitized
# (NSS and libcacard are not ours to instrument).
bench-tools: $(BENCH_TOOLS) $(PKI_STAMP)

$(BUILD)/tests/vcacd: tests/bench/vcacd.c | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $(call pkg_cflags,libcacard) $< $(LDFLAGS) $(call pkg_libs,libcacard) -o $@

$(BUILD)/tests/pcscwait: tests/bench/pcscwait.c | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $(call pkg_cflags,libpcsclite) $< $(LDFLAGS) $(call pkg_libs,libpcsclite) -o $@

$(BUILD)/tests/cardprobe: tests/bench/cardprobe.c | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $(call pkg_cflags,libpcsclite) $< $(LDFLAGS) $(call pkg_libs,libpcsclite) -o $@

$(PKI_STAMP): tests/pki/mkpki.sh tests/pki/personas.txt
	tests/pki/mkpki.sh $(BUILD)/pki
	touch $@

$(BUILD)/tests:
	mkdir -p $@

TEST_PROGS := $(foreach v,$(VARIANTS),$(call unit_tests,$(v)) $(BUILD)/$(v)/tests/test_pcsc \
                $(BUILD)/$(v)/tests/test_core)

# The whole suite, plain and under ASan+UBSan. Installs packages if needed.
check: deps
	$(MAKE) --no-print-directory all $(TEST_PROGS)
	$(MAKE) --no-print-directory lint
	BUILD=$(BUILD) tests/run

check-unit: $(foreach v,$(VARIANTS),$(call unit_tests,$(v)))
	BUILD=$(BUILD) tests/run unit

check-bench: bench-tools $(TEST_PROGS)
	BUILD=$(BUILD) tests/run bench

# The full-screen front end on the bench and the reference portal.
demo: deps
	$(MAKE) --no-print-directory bench-tools $(BUILD)/plain/cacreg
	CACREG_BUILD=$(abspath $(BUILD)) tests/bench/demo

# Long runs: the card pulled at random moments, 210 times per binary (PULL_RUNS x 3).
soak: deps
	$(MAKE) --no-print-directory all
	BUILD=$(BUILD) tests/run soak

# Benchmarks print figures; they assert nothing about speed.
bench: deps
	$(MAKE) --no-print-directory bench-tools
	BUILD=$(BUILD) tests/bench/benchmark

# The fuzz targets, longer than make check runs them (FUZZ_SECONDS each).
fuzz: bench-tools
	BUILD=$(BUILD) tests/fuzz/run $${FUZZ_SECONDS:-300}

# Outside text reaches a terminal through one function per output: out_printf()
# (tui/out.c) for the commands, tui_put()/tui_text() (tui/draw.c) for the screen.
# Nothing else in tui/ may print.
lint: lint-output
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
	    --suppress=missingIncludeSystem -Icore -Itui core tui tests/bench tests/unit tests/fuzz
	clang-tidy --quiet $(CORE_SRC) $(TUI_SRC) -- -std=c11 -D_POSIX_C_SOURCE=200809L -Icore -Itui \
	    $(call pkg_cflags,$(CORE_PKGS) $(TUI_PKGS))

lint-output:
	@bad=$$(grep -nE '(^|[^_a-z])(printf|fprintf|vprintf|vfprintf|puts|fputs|putchar|putc|fputc|fwrite)[[:space:]]*\(' \
	    $(TUI_SRC) | grep -v '^tui/out.c:'; \
	    grep -nE '(^|[^_a-z])(mv)?w?(add(n)?str|printw|addch|add_wch|addwstr)[[:space:]]*\(' $(TUI_SRC) | \
	    grep -v '^tui/draw.c:'); \
	if [ -n "$$bad" ]; then echo "$$bad"; \
	    echo "lint: text printed outside out_printf() (tui/out.c) or tui_put()/tui_text() (tui/draw.c)"; \
	    exit 1; fi

install: $(BUILD)/plain/cacreg
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/doc/cacreg
	install -m 755 $(BUILD)/plain/cacreg $(DESTDIR)$(PREFIX)/bin/cacreg
	install -m 644 README.md docs/portal-api.md $(DESTDIR)$(PREFIX)/share/doc/cacreg/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/cacreg
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/cacreg

clean:
	rm -rf $(BUILD)
