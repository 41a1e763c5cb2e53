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
TUI_SRC   := $(wildcard tui/*.c tui/*/*.c)
TUI_DIRS  := $(sort $(dir $(wildcard tui/*/*.h)))
TUI_INC   := $(patsubst %/,-I%,$(TUI_DIRS))
TUI_PKGS  := jansson ncursesw formw
KIOSK_SRC := $(wildcard kiosk/*.c)
KIOSK_PKGS := ncursesw libsystemd
PORTAL_SRC := $(wildcard portal/*.c)
PORTAL_PKGS := libmicrohttpd gnutls sqlite3 libargon2 jansson libsystemd ldap
UNIT_SRC  := $(wildcard tests/unit/test_*.c)

# Two builds of everything we test: plain, and under ASan+UBSan.
VARIANTS  := plain asan
plain_FLAGS :=
asan_FLAGS  := $(SAN)

core_objs  = $(patsubst core/%.c,$(BUILD)/$(1)/core/%.o,$(CORE_SRC))
unit_tests = $(patsubst tests/unit/%.c,$(BUILD)/$(1)/tests/%,$(UNIT_SRC))

BENCH_TOOLS := $(BUILD)/tests/vcacd $(BUILD)/tests/pcscwait $(BUILD)/tests/cardprobe \
               $(BUILD)/tests/libifdbench.so $(BUILD)/tests/portal-load
PKI_STAMP   := $(BUILD)/pki/.stamp
# The portal's load personas (make bench, make soak): made once, slow (RSA keys).
PERSONAS_STAMP := $(BUILD)/personas/.stamp

.PHONY: all check check-unit check-bench bench bench-tools deps install uninstall clean \
        lint lint-output fuzz demo soak mutate programs deb deb-build
.DELETE_ON_ERROR:

all: $(foreach v,$(VARIANTS),$(BUILD)/$(v)/libcacreg.a $(BUILD)/$(v)/cacreg \
       $(BUILD)/$(v)/cacreg-kiosk $(BUILD)/$(v)/cacreg-portald) bench-tools

# Installs the Debian packages when one is missing (quick when none is).
deps:
	@.ci/install-deps

define variant_rules
$(BUILD)/$(1)/core/%.o: core/%.c $(wildcard core/*.h) | $(BUILD)/$(1)/core
	$$(CC) $$(ALL_CFLAGS) $$($(1)_FLAGS) $$(call pkg_cflags,$$(CORE_PKGS)) -c $$< -o $$@

$(BUILD)/$(1)/libcacreg.a: $(call core_objs,$(1))
	$$(AR) rcs $$@ $$^

$(BUILD)/$(1)/cacreg: $(TUI_SRC) $(wildcard tui/*/*.h) $(wildcard core/*.h) VERSION $(BUILD)/$(1)/libcacreg.a
	$$(CC) $$(ALL_CFLAGS) $$($(1)_FLAGS) $$(VERSION_DEFS) $$(TUI_INC) \
	    $$(call pkg_cflags,$$(TUI_PKGS) $$(CORE_PKGS)) $(TUI_SRC) \
	    $(BUILD)/$(1)/libcacreg.a $$(LDFLAGS) $$(call pkg_libs,$$(TUI_PKGS) $$(CORE_PKGS)) -o $$@

$(BUILD)/$(1)/cacreg-kiosk: $(KIOSK_SRC) $(wildcard core/*.h) $(BUILD)/$(1)/libcacreg.a
	$$(CC) $$(ALL_CFLAGS) $$($(1)_FLAGS) $$(call pkg_cflags,$$(KIOSK_PKGS) $$(CORE_PKGS)) $(KIOSK_SRC) \
	    $(BUILD)/$(1)/libcacreg.a $$(LDFLAGS) $$(call pkg_libs,$$(KIOSK_PKGS) $$(CORE_PKGS)) -o $$@

$(BUILD)/$(1)/cacreg-portald: $(PORTAL_SRC) $(wildcard portal/*.h) $(wildcard core/*.h) VERSION $(BUILD)/$(1)/libcacreg.a
	$$(CC) $$(ALL_CFLAGS) $$($(1)_FLAGS) $$(VERSION_DEFS) -Iportal \
	    $$(call pkg_cflags,$$(PORTAL_PKGS) $$(CORE_PKGS)) $(PORTAL_SRC) \
	    $(BUILD)/$(1)/libcacreg.a $$(LDFLAGS) $$(call pkg_libs,$$(PORTAL_PKGS) $$(CORE_PKGS)) -o $$@

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

$(BUILD)/tests/libifdbench.so: tests/bench/ifd-bench.c | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) -shared -fPIC $(call pkg_cflags,libpcsclite) $< $(LDFLAGS) -ldl -o $@

$(BUILD)/tests/pcscwait: tests/bench/pcscwait.c | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $(call pkg_cflags,libpcsclite) $< $(LDFLAGS) $(call pkg_libs,libpcsclite) -o $@

$(BUILD)/tests/cardprobe: tests/bench/cardprobe.c | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $(call pkg_cflags,libpcsclite) $< $(LDFLAGS) $(call pkg_libs,libpcsclite) -o $@

$(BUILD)/tests/portal-load: tests/bench/portal_load.c | $(BUILD)/tests
	$(CC) $(ALL_CFLAGS) $(call pkg_cflags,libcurl) $< $(LDFLAGS) $(call pkg_libs,libcurl) -o $@

$(PKI_STAMP): tests/pki/mkpki.sh tests/pki/personas.txt
	tests/pki/mkpki.sh $(BUILD)/pki
	touch $@

$(PERSONAS_STAMP): tests/bench/mkpersonas.py $(PKI_STAMP)
	tests/bench/mkpersonas.py $(BUILD)/pki $(BUILD)/personas
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
	$(MAKE) --no-print-directory bench-tools $(BUILD)/plain/cacreg $(BUILD)/plain/cacreg-portald
	CACREG_BUILD=$(abspath $(BUILD)) tests/bench/demo

# Long runs: the card pulled at random moments, 210 times per binary (PULL_RUNS x 3);
# 2,000 registrations against cacreg-portald, then again with kill -9 in the middle.
soak: deps
	$(MAKE) --no-print-directory all $(PERSONAS_STAMP)
	BUILD=$(BUILD) tests/run soak

# Benchmarks print figures; they assert nothing about speed.
bench: deps
	$(MAKE) --no-print-directory all $(PERSONAS_STAMP)
	BUILD=$(BUILD) tests/bench/benchmark

# The fuzz targets, longer than make check runs them (FUZZ_SECONDS each).
fuzz: bench-tools
	BUILD=$(BUILD) tests/fuzz/run $${FUZZ_SECONDS:-300}

# Each guarantee broken once, alone, in a scratch copy; its tests must notice
# (tests/mutate/mutations.py). MUTATE=name... runs some.
mutate: deps
	$(MAKE) --no-print-directory bench-tools $(PERSONAS_STAMP)
	BUILD=$(BUILD) tests/mutate/run $(MUTATE)

# Outside text reaches a terminal through one function per output: out_printf()
# (tui/cli/out.c) for the commands, tui_put()/tui_text() (tui/screen/draw.c) for the screen.
# Nothing else in tui/ may print.
lint: lint-output
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
	    --suppress=missingIncludeSystem -Icore $(TUI_INC) -Iportal core tui kiosk portal tests/bench tests/unit tests/fuzz
	clang-tidy --quiet $(CORE_SRC) $(TUI_SRC) $(KIOSK_SRC) $(PORTAL_SRC) -- -std=c11 -D_POSIX_C_SOURCE=200809L \
	    -Icore $(TUI_INC) -Iportal -DCACREG_VERSION='"lint"' $(call pkg_cflags,$(CORE_PKGS) $(TUI_PKGS) $(PORTAL_PKGS))

lint-output:
	@bad=$$(grep -nE '(^|[^_a-z])(printf|fprintf|vprintf|vfprintf|puts|fputs|putchar|putc|fputc|fwrite)[[:space:]]*\(' \
	    $(TUI_SRC) | grep -v '^tui/cli/out.c:'; \
	    grep -nE '(^|[^_a-z])(mv)?w?(add(n)?str|printw|addch|add_wch|addwstr)[[:space:]]*\(' $(TUI_SRC) | \
	    grep -v '^tui/screen/draw.c:'); \
	if [ -n "$$bad" ]; then echo "$$bad"; \
	    echo "lint: text printed outside out_printf() (tui/cli/out.c) or tui_put()/tui_text() (tui/screen/draw.c)"; \
	    exit 1; fi

# ---- installing: make install, make uninstall, make deb ----
# The program reads /etc/cacreg whatever PREFIX is. polkit rules, units and
# completion go where their readers look: /usr's places for PREFIX=/usr (the
# package), else the local ones.
SYSCONFDIR    ?= /etc
BINDIR        ?= $(PREFIX)/bin
SBINDIR       ?= $(PREFIX)/sbin
DATADIR       ?= $(PREFIX)/share
MANDIR        ?= $(DATADIR)/man
DOCDIR        ?= $(DATADIR)/doc/cacreg
COMPLETIONDIR ?= $(DATADIR)/bash-completion/completions
POLKITDIR     ?= $(if $(filter /usr,$(PREFIX)),/usr/share,$(SYSCONFDIR))/polkit-1/rules.d
UNITDIR       ?= $(if $(filter /usr,$(PREFIX)),,$(PREFIX))/lib/systemd/system
KIOSKDATADIR  ?= $(DATADIR)/cacreg-kiosk

# The kiosk launcher (issue 13) and its files, each installed once kiosk/ has it:
# the program (its build rule comes with it), the units, the sshd_config Match
# block (installed inactive: an administrator links it into sshd_config.d) and
# the station's configuration.
KIOSK_SRC   := $(wildcard kiosk/*.c)
KIOSK_UNITS := $(wildcard kiosk/*.service)
KIOSK_SSHD  := $(wildcard kiosk/sshd-*.conf)
KIOSK_CONF  := $(wildcard kiosk/kiosk.conf)

PROGRAMS := $(BUILD)/plain/cacreg $(if $(KIOSK_SRC),$(BUILD)/plain/cacreg-kiosk) \
            $(BUILD)/plain/cacreg-portald
MANPAGES := $(BUILD)/man/cacreg.1.gz $(BUILD)/man/cacreg.conf.5.gz \
            $(if $(KIOSK_SRC),$(BUILD)/man/cacreg-kiosk.8.gz) \
            $(BUILD)/man/cacreg-portald.8.gz $(BUILD)/man/portald.conf.5.gz

# What install installs, and only that (the package builds this, not `all`).
programs: $(PROGRAMS) $(MANPAGES)

$(BUILD)/man/%.gz: docs/man/% | $(BUILD)/man
	gzip -9n -c $< >$@

$(BUILD)/man:
	mkdir -p $@

# mkdir -p, not install -d: install -d would chmod an existing directory (polkit's is 0700).
# An administrator's configuration is never overwritten, and uninstall removes it
# only while it is still the example.
install: programs
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(DOCDIR) $(DESTDIR)$(COMPLETIONDIR) $(DESTDIR)$(POLKITDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/cacreg
	install -m 755 $(BUILD)/plain/cacreg $(DESTDIR)$(BINDIR)/cacreg
	install -m 644 $(BUILD)/man/cacreg.1.gz $(DESTDIR)$(MANDIR)/man1/
	install -m 644 $(BUILD)/man/cacreg.conf.5.gz $(DESTDIR)$(MANDIR)/man5/
	install -m 644 README.md docs/portal-api.md docs/ssh.md $(DESTDIR)$(DOCDIR)/
	install -m 644 data/cacreg.bash-completion $(DESTDIR)$(COMPLETIONDIR)/cacreg
	install -m 644 data/50-cacreg-group.rules $(DESTDIR)$(POLKITDIR)/
	@set -e; conf=$(DESTDIR)$(SYSCONFDIR)/cacreg/cacreg.conf; \
	if [ -e $$conf ]; then echo "install: $$conf exists: kept"; \
	else echo "install -m 644 data/cacreg.conf $$conf"; install -m 644 data/cacreg.conf $$conf; fi
ifneq ($(KIOSK_SRC),)
	mkdir -p $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(BUILD)/plain/cacreg-kiosk $(DESTDIR)$(SBINDIR)/
	install -m 644 $(BUILD)/man/cacreg-kiosk.8.gz $(DESTDIR)$(MANDIR)/man8/
else
	@echo "install: kiosk/ has no launcher yet: cacreg-kiosk and cacreg-kiosk(8) skipped"
endif
ifneq ($(KIOSK_UNITS),)
	mkdir -p $(DESTDIR)$(UNITDIR)
	install -m 644 $(KIOSK_UNITS) $(DESTDIR)$(UNITDIR)/
else
	@echo "install: kiosk/ has no systemd units yet (*.service): skipped"
endif
ifneq ($(KIOSK_SSHD),)
	mkdir -p $(DESTDIR)$(KIOSKDATADIR)
	install -m 644 $(KIOSK_SSHD) $(DESTDIR)$(KIOSKDATADIR)/
else
	@echo "install: kiosk/ has no sshd_config snippet yet (sshd-*.conf): skipped"
endif
	mkdir -p $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR)
	install -m 755 $(BUILD)/plain/cacreg-portald $(DESTDIR)$(SBINDIR)/
	install -m 644 $(BUILD)/man/cacreg-portald.8.gz $(DESTDIR)$(MANDIR)/man8/
	install -m 644 $(BUILD)/man/portald.conf.5.gz $(DESTDIR)$(MANDIR)/man5/
	install -m 644 portal/cacreg-portald.service $(DESTDIR)$(UNITDIR)/
	@set -e; conf=$(DESTDIR)$(SYSCONFDIR)/cacreg/portald.conf; \
	if [ -e $$conf ]; then echo "install: $$conf exists: kept"; \
	else echo "install -m 644 portal/portald.conf $$conf"; install -m 644 portal/portald.conf $$conf; fi
ifneq ($(KIOSK_CONF),)
	@set -e; conf=$(DESTDIR)$(SYSCONFDIR)/cacreg/kiosk.conf; \
	if [ -e $$conf ]; then echo "install: $$conf exists: kept"; \
	else echo "install -m 644 $(KIOSK_CONF) $$conf"; install -m 644 $(KIOSK_CONF) $$conf; fi
else
	@echo "install: kiosk/ has no kiosk.conf yet: skipped"
endif

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/cacreg $(DESTDIR)$(SBINDIR)/cacreg-kiosk \
	    $(DESTDIR)$(SBINDIR)/cacreg-portald $(DESTDIR)$(MANDIR)/man8/cacreg-portald.8.gz \
	    $(DESTDIR)$(MANDIR)/man5/portald.conf.5.gz $(DESTDIR)$(UNITDIR)/cacreg-portald.service \
	    $(DESTDIR)$(MANDIR)/man1/cacreg.1.gz $(DESTDIR)$(MANDIR)/man5/cacreg.conf.5.gz \
	    $(DESTDIR)$(MANDIR)/man8/cacreg-kiosk.8.gz $(DESTDIR)$(COMPLETIONDIR)/cacreg \
	    $(DESTDIR)$(POLKITDIR)/50-cacreg-group.rules \
	    $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(KIOSK_UNITS))) \
	    $(addprefix $(DESTDIR)$(KIOSKDATADIR)/,$(notdir $(KIOSK_SSHD)))
	rm -rf $(DESTDIR)$(DOCDIR)
	[ ! -d $(DESTDIR)$(KIOSKDATADIR) ] || rmdir --ignore-fail-on-non-empty $(DESTDIR)$(KIOSKDATADIR)
	@set -e; for pair in data/cacreg.conf:cacreg.conf portal/portald.conf:portald.conf \
	    $(addsuffix :kiosk.conf,$(KIOSK_CONF)); do \
	    conf=$(DESTDIR)$(SYSCONFDIR)/cacreg/$${pair#*:}; \
	    if cmp -s $${pair%%:*} $$conf; then echo "rm -f $$conf"; rm -f $$conf; \
	    elif [ -e $$conf ]; then echo "uninstall: $$conf was changed: kept"; fi; \
	done
	[ ! -d $(DESTDIR)$(SYSCONFDIR)/cacreg ] || rmdir --ignore-fail-on-non-empty $(DESTDIR)$(SYSCONFDIR)/cacreg

# The Debian packages, built by dpkg-buildpackage in a copy of the project's
# files ($(DEB_DIR)/src) so that the working tree stays as it is; the .debs land
# in $(DEB_DIR). cacreg-kiosk is built once kiosk/ has the launcher. MAKEFLAGS
# is not passed on: a BUILD given to this make would reach debian/rules' make.
DEB_DIR := $(BUILD)/deb
DEB_PROFILES := $(if $(KIOSK_SRC),,pkg.cacreg.nokiosk)

deb: deps
	$(MAKE) --no-print-directory deb-build
	lintian --fail-on error,warning $(DEB_DIR)/*.changes

deb-build:
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	    git ls-files -z --cached --others --exclude-standard; \
	else find . \( -path ./build -o -path ./$(DEB_DIR) \) -prune -o -type f -print0; fi | \
	    tar --null --ignore-failed-read -T - -cf - | tar -xf - -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL DEB_BUILD_PROFILES="$(DEB_PROFILES)" \
	    dpkg-buildpackage -us -uc -b -Jauto
	rm -rf $(DEB_DIR)/src
	ls $(DEB_DIR)/*.deb

clean:
	rm -rf $(BUILD)
