# qvisor — one non-recursive Makefile.
#   make              build qvisord, qvisor and the internal libraries
#   make check        build, build the test guest, run every Criterion suite
#   make check-asan   the same with ASan+UBSan, in build-asan/
#   make fuzz         run the libFuzzer targets for a bounded time
#   make demo         start a daemon and boot the demo guest
#   make guest        build the cached test guest (build/guest/)
#
# Sources are picked up by wildcard: each top-level module folder becomes
# $(O)/lib/libqv-<module>.a, each tests/<dir>/test_*.c becomes one Criterion
# binary linked against the module libraries (see TEST_LIBS_<dir>).

O        ?= build
CC       ?= gcc
PKGS     := json-c liburing libnl-3.0 libnl-route-3.0 libseccomp sqlite3 libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
CRIT_LIBS  := $(shell pkg-config --libs criterion)

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-unused-parameter -Wno-format-truncation
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARN) -MMD -MP -I. $(PKG_CFLAGS) -D_GNU_SOURCE
LDLIBS   += $(PKG_LIBS) -lpthread

ifeq ($(SANITIZE),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -O1
LDFLAGS  += -fsanitize=address,undefined
endif

MODULES  := common qemu net storage sched migrate daemon
# Link order: later modules depend on earlier ones.
LIBORDER := daemon migrate sched storage net qemu common

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

# --- tests -----------------------------------------------------------------
# tests/<dir>/test_*.c -> $(O)/tests/<dir>/test_*; helpers in tests/helpers/.
TEST_HELPER_SRCS := $(wildcard tests/helpers/*.c)
TEST_HELPER_LIB  := $(O)/lib/libqv-testhelpers.a
$(O)/obj/tests/helpers/%.o: CFLAGS += -Itests
$(TEST_HELPER_LIB): $(call obj,$(TEST_HELPER_SRCS))
	@mkdir -p $(dir $@)
	rm -f $@
	$(if $^,ar rcs $@ $^,ar rcs $@)

TEST_DIRS := $(MODULES) integration lab
TEST_LIBS_common      := common
TEST_LIBS_qemu        := qemu common
TEST_LIBS_net         := net common
TEST_LIBS_storage     := storage common
TEST_LIBS_sched       := sched qemu common
TEST_LIBS_migrate     := $(LIBORDER)
TEST_LIBS_daemon      := $(LIBORDER)
TEST_LIBS_integration := $(LIBORDER)
TEST_LIBS_lab         := $(LIBORDER)

define TEST_RULE
$(O)/tests/$(1)/%: tests/$(1)/%.c $(TEST_HELPER_LIB) $(foreach l,$(TEST_LIBS_$(1)),$(call libfile,$(l)))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -Itests $$(LDFLAGS) -o $$@ $$< $(TEST_HELPER_LIB) \
		$(foreach l,$(TEST_LIBS_$(1)),$(call libfile,$(l))) $$(LDLIBS) $$(CRIT_LIBS)
endef
$(foreach d,$(TEST_DIRS),$(eval $(call TEST_RULE,$(d))))

UNIT_TESTS  := $(patsubst %.c,$(O)/%,$(foreach d,$(MODULES),$(wildcard tests/$(d)/test_*.c)))
INTEG_TESTS := $(patsubst %.c,$(O)/%,$(wildcard tests/integration/test_*.c))
# tests/lab: suites that run inside the lab VM (scripts/labvm.sh); on the
# host they are driven by tests/integration/test_labvm.c or make check-lab.
LAB_TESTS   := $(patsubst %.c,$(O)/%,$(wildcard tests/lab/test_*.c))
TESTS       := $(UNIT_TESTS) $(INTEG_TESTS) $(LAB_TESTS)

tests: $(TESTS)

guest:
	scripts/mkguest.sh build/guest

# Criterion: unit suites in parallel, integration suites one test at a time
# (each boots TCG guests on a 2-core machine).
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

check-unit: all tests
	scripts/run-tests.sh $(UNIT_TESTS) --

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

clean:
	rm -rf $(O) build-asan build-fuzz

.PHONY: all tests guest check check-lab check-unit check-asan fuzz demo clean
.SECONDARY:

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
