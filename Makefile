# qvisor — one non-recursive Makefile.
#   make              build qvisord, qvisor and the internal libraries
#   make check        build, build the test guest, run every Criterion suite
#   make check-asan   the same with ASan+UBSan, in build-asan/
#   make fuzz         run the libFuzzer targets for a bounded time
#   make demo         start a daemon and boot the demo guest
#   make guest        build the cached test guest (build/guest/)
#   make check-fast   the unit suites only (no guests; under a minute)
#   make install      PREFIX=/usr/local DESTDIR= : programs, man pages, docs,
#                     systemd units, sysusers, shell completion; make uninstall
#   make deb          the Debian package (dpkg-buildpackage) in build/deb/
#
# Sources are picked up by wildcard: each top-level module folder becomes
# $(O)/lib/libqv-<module>.a, each tests/<dir>/test_*.c becomes one Criterion
# binary linked against the module libraries (see TEST_LIBS_<dir>).

O        ?= build
CC       ?= gcc
PKGS     := json-c liburing libnl-3.0 libnl-route-3.0 libseccomp sqlite3 libxml-2.0 libmicrohttpd
PKGS     += gnutls
PKGS     += libnftables
# cluster/ (etcd v3 JSON gateway client)
PKGS     += libcurl
# Deferred (=, cached on first use): pkg-config runs only when something is
# compiled, so `make demo` on a fresh machine prints nothing before
# install-deps has installed the -dev packages.
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $(PKGS)))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $$(shell pkg-config --libs $(PKGS)))$(PKG_LIBS)
CRIT_LIBS  = $(eval CRIT_LIBS := $$(shell pkg-config --libs criterion))$(CRIT_LIBS)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-unused-parameter -Wno-format-truncation
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARN) -MMD -MP -I. $(PKG_CFLAGS) -D_GNU_SOURCE
LDLIBS   += $(PKG_LIBS) -lpthread -lm

ifeq ($(SANITIZE),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -O1
LDFLAGS  += -fsanitize=address,undefined
endif

MODULES  := common qemu net storage sched migrate daemon
# Link order: later modules depend on earlier ones.
LIBORDER := daemon migrate sched storage net qemu common
# cluster/: the etcd client and cluster store (issue 15); used by daemon/.
MODULES  += cluster
LIBORDER := daemon cluster $(filter-out daemon,$(LIBORDER))

# Files with a main() are not part of the libraries.
MAINS    := daemon/main.c
lib_srcs  = $(filter-out $(MAINS),$(wildcard $(1)/*.c))
obj       = $(patsubst %.c,$(O)/obj/%.o,$(1))
libfile   = $(O)/lib/libqv-$(1).a

ALL_LIBS := $(foreach m,$(LIBORDER),$(call libfile,$(m)))

all: $(O)/qvisord $(O)/qvisor

# --- objects ---------------------------------------------------------------
$(O)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

define MODULE_RULE
$(call libfile,$(1)): $(call obj,$(call lib_srcs,$(1)))
	@mkdir -p $$(dir $$@)
	rm -f $$@
	$$(if $$^,ar rcs $$@ $$^,ar rcs $$@)
endef
$(foreach m,$(MODULES),$(eval $(call MODULE_RULE,$(m))))

# --- programs --------------------------------------------------------------
$(O)/qvisord: $(call obj,$(MAINS)) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(call obj,$(MAINS)) $(ALL_LIBS) $(LDLIBS)

CLI_SRCS := $(wildcard cli/*.c)
$(O)/qvisor: $(call obj,$(CLI_SRCS)) $(ALL_LIBS)
	$(CC) $(LDFLAGS) -o $@ $(call obj,$(CLI_SRCS)) $(ALL_LIBS) $(LDLIBS)

# The CLI's pieces without its main() and verb table, for tests/cli/.
$(call libfile,cli): $(call obj,$(filter-out cli/main.c,$(CLI_SRCS)))
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

# --- tests -----------------------------------------------------------------
# tests/<dir>/test_*.c -> $(O)/tests/<dir>/test_*; helpers in tests/helpers/.
TEST_HELPER_SRCS := $(wildcard tests/helpers/*.c)
TEST_HELPER_LIB  := $(O)/lib/libqv-testhelpers.a
$(O)/obj/tests/helpers/%.o: CFLAGS += -Itests
$(TEST_HELPER_LIB): $(call obj,$(TEST_HELPER_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@
	$(if $^,ar rcs $@ $^,ar rcs $@)

TEST_DIRS := $(MODULES) cli integration lab
TEST_LIBS_common      := common
TEST_LIBS_qemu        := qemu common
TEST_LIBS_net         := net qemu common
TEST_LIBS_storage     := storage common
TEST_LIBS_sched       := sched qemu common
TEST_LIBS_migrate     := $(LIBORDER)
TEST_LIBS_daemon      := $(LIBORDER)
TEST_LIBS_cli         := cli $(LIBORDER)
TEST_LIBS_integration := $(LIBORDER)
TEST_LIBS_lab         := $(LIBORDER)
TEST_LIBS_cluster     := cluster common

define TEST_RULE
$(O)/tests/$(1)/%: tests/$(1)/%.c $(TEST_HELPER_LIB) $(foreach l,$(TEST_LIBS_$(1)),$(call libfile,$(l)))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -Itests $$(LDFLAGS) -o $$@ $$< $(TEST_HELPER_LIB) \
		$(foreach l,$(TEST_LIBS_$(1)),$(call libfile,$(l))) $$(LDLIBS) $$(CRIT_LIBS)
endef
$(foreach d,$(TEST_DIRS),$(eval $(call TEST_RULE,$(d))))

UNIT_TESTS  := $(patsubst %.c,$(O)/%,$(foreach d,$(MODULES) cli,$(wildcard tests/$(d)/test_*.c)))
INTEG_TESTS := $(patsubst %.c,$(O)/%,$(wildcard tests/integration/test_*.c))
# tests/lab: suites that run inside the lab VM (scripts/labvm.sh); on the
# host they are driven by tests/integration/test_labvm.c or make check-lab.
LAB_TESTS   := $(patsubst %.c,$(O)/%,$(wildcard tests/lab/test_*.c))
TESTS       := $(UNIT_TESTS) $(INTEG_TESTS) $(LAB_TESTS)

tests: $(TESTS)

guest:
	scripts/mkguest.sh build/guest

# Criterion: unit suites in parallel, integration suites one test at a time
# (each boots TCG guests on a 2-core machine); integration suites that do not
# depend on an idle host run two at once (scripts/run-tests.sh, QV_TEST_LANES).
export QV_BUILD_DIR := $(abspath $(O))
export QV_GUEST_DIR := $(abspath build/guest)
export QV_SRC_DIR   := $(abspath .)
check: all tests guest
	scripts/run-tests.sh $(UNIT_TESTS) -- $(INTEG_TESTS)

# The lab VM suites alone (a few minutes under TCG); make check runs them
# through tests/integration/test_labvm.c.
check-lab: all tests guest
	scripts/labvm.sh $(foreach t,$(LAB_TESTS),--add $(t)) --add build/guest/vmlinuz \
		--add build/guest/initrd.img -- /lab/run-all.sh

check-fast check-unit: all $(UNIT_TESTS)
	scripts/run-tests.sh $(UNIT_TESTS) --

# The package test: build the .deb, install it into a throwaway root, run the
# installed daemon and CLI there, boot the test guest, remove it cleanly.
check-package: guest
	scripts/test-package.sh

# Criterion's runner leaks a few bytes with .timeout and --jobs > 1.
check-asan:
	LSAN_OPTIONS=suppressions=$(abspath scripts/lsan.supp):print_suppressions=0 \
		$(MAKE) O=build-asan SANITIZE=1 check

# --- fuzzing (clang libFuzzer) -----------------------------------------------
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_TIME ?= 30
fuzz:
	scripts/fuzz.sh $(FUZZ_TIME) $(FUZZ_SRCS)

demo:
	scripts/demo.sh

# --- install -------------------------------------------------------------------
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
DOCDIR      ?= $(PREFIX)/share/doc/qvisor
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
INSTALL     ?= install
DOCS        := README.md CONTRIBUTING.md $(wildcard docs/*.md)

install: all
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	$(INSTALL) -m 0755 $(O)/qvisor $(DESTDIR)$(BINDIR)/qvisor
	$(INSTALL) -m 0755 $(O)/qvisord $(DESTDIR)$(SBINDIR)/qvisord
	$(INSTALL) -m 0644 docs/qvisor.1 $(DESTDIR)$(MANDIR)/man1/qvisor.1
	$(INSTALL) -m 0644 docs/qvisord.8 $(DESTDIR)$(MANDIR)/man8/qvisord.8
	$(INSTALL) -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	sed 's|@SBINDIR@|$(SBINDIR)|g' daemon/systemd/qvisord.service \
		> $(DESTDIR)$(UNITDIR)/qvisord.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/qvisord.service
	$(INSTALL) -m 0644 daemon/systemd/qvisor.slice $(DESTDIR)$(UNITDIR)/qvisor.slice
	$(INSTALL) -m 0644 daemon/systemd/qvisord.socket $(DESTDIR)$(UNITDIR)/qvisord.socket
	$(INSTALL) -m 0644 daemon/systemd/qvisor.sysusers $(DESTDIR)$(SYSUSERSDIR)/qvisor.conf
	$(INSTALL) -m 0644 cli/completion/qvisor.bash $(DESTDIR)$(BASHCOMPDIR)/qvisor
	$(INSTALL) -m 0644 cli/completion/_qvisor $(DESTDIR)$(ZSHCOMPDIR)/_qvisor

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/qvisor $(DESTDIR)$(SBINDIR)/qvisord \
		$(DESTDIR)$(MANDIR)/man1/qvisor.1 $(DESTDIR)$(MANDIR)/man8/qvisord.8 \
		$(DESTDIR)$(UNITDIR)/qvisord.service $(DESTDIR)$(UNITDIR)/qvisor.slice \
		$(DESTDIR)$(UNITDIR)/qvisord.socket \
		$(DESTDIR)$(SYSUSERSDIR)/qvisor.conf $(DESTDIR)$(BASHCOMPDIR)/qvisor \
		$(DESTDIR)$(ZSHCOMPDIR)/_qvisor
	rm -rf $(DESTDIR)$(DOCDIR)

# Debian package from this tree; the .deb lands in build/deb/.
deb:
	scripts/build-deb.sh

clean:
	rm -rf $(O) build-asan build-fuzz

.PHONY: all tests guest check check-fast check-unit check-lab check-package check-asan fuzz \
	demo clean install uninstall deb
.SECONDARY:

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
