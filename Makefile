# netreel — one non-recursive Makefile. Objects go under build/<variant>/, generated code under
# build/gen/. `make help` lists the targets.

.DEFAULT_GOAL := all
SHELL := /bin/bash

VARIANT ?= release
# BUILD=dir puts everything elsewhere (parallel work in one tree).
BUILD ?= build
B := $(BUILD)/$(VARIANT)
GEN := $(BUILD)/gen
PREFIX ?= /usr/local
PYTHON ?= /usr/bin/python3
NPROC := $(shell nproc 2>/dev/null || echo 2)

ifeq ($(V),1)
Q :=
say = @true
else
Q := @
say = @printf '  %-7s %s\n' $(1) $(2)
endif

# ---- toolchain and flags ---------------------------------------------------------------------
PKGS := libnghttp2 libuv libprotobuf-c openssl libpcap libcurl jansson yaml-0.1 libpcre2-8 libbpf
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(filter-out libbpf,$(PKGS)) 2>/dev/null)
# libbpf (and libelf, zlib under it) only where the capture's --tls loader is linked in.
BPF_LIBS := $(shell pkg-config --libs libbpf 2>/dev/null)

CC ?= cc
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
        -Wno-unused-parameter -Wno-format-truncation
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE $(WARN) -Ilib -Iservices -I$(GEN) $(PKG_CFLAGS) -MMD -MP
LDLIBS := $(PKG_LIBS) -lm -lpthread

# nghttp2's DoS limits were back-ported by Debian into 1.52 without a version bump: detect by symbol.
NGHTTP2_SO := $(shell pkg-config --variable=libdir libnghttp2 2>/dev/null)/libnghttp2.so
ifneq ($(shell nm -D $(NGHTTP2_SO) 2>/dev/null | grep -c ' T nghttp2_option_set_stream_reset_rate_limit'),0)
CFLAGS_BASE += -DHAVE_NGHTTP2_STREAM_RESET_RATE_LIMIT=1
endif
ifneq ($(shell nm -D $(NGHTTP2_SO) 2>/dev/null | grep -c ' T nghttp2_option_set_max_continuations'),0)
CFLAGS_BASE += -DHAVE_NGHTTP2_MAX_CONTINUATIONS=1
endif
ifneq ($(wildcard $(NGHTTP2_SO)),)
ifeq ($(findstring HAVE_NGHTTP2_STREAM_RESET_RATE_LIMIT,$(CFLAGS_BASE)),)
$(warning libnghttp2 lacks the rapid-reset limit (CVE-2023-44487): upgrade libnghttp2-dev)
endif
ifeq ($(findstring HAVE_NGHTTP2_MAX_CONTINUATIONS,$(CFLAGS_BASE)),)
$(warning libnghttp2 lacks the CONTINUATION limit (CVE-2024-28182): upgrade libnghttp2-dev)
endif
endif

ifeq ($(VARIANT),release)
CFLAGS_VARIANT := -O2 -g
else ifeq ($(VARIANT),asan)
CC := clang
CFLAGS_VARIANT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -Wno-unknown-warning-option \
                  -fno-sanitize-recover=all
LDFLAGS_VARIANT := -fsanitize=address,undefined
else ifeq ($(VARIANT),fuzz)
CC := clang
CFLAGS_VARIANT := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -Wno-unknown-warning-option \
                  -fno-sanitize-recover=all -DNR_FUZZING=1
LDFLAGS_VARIANT := -fsanitize=address,undefined
else ifeq ($(VARIANT),tsan)
# Data races between the loops and the threads (capture reader, store writer); by hand:
# make VARIANT=tsan all, then NETREEL_BUILD=build/tsan with the integration tests.
CC := clang
CFLAGS_VARIANT := -O1 -g -fno-omit-frame-pointer -fsanitize=thread -Wno-unknown-warning-option
LDFLAGS_VARIANT := -fsanitize=thread
else
$(error unknown VARIANT=$(VARIANT): release, asan, tsan or fuzz)
endif
ALL_CFLAGS := $(CFLAGS_BASE) $(CFLAGS_VARIANT) $(CFLAGS)
ALL_LDFLAGS := $(LDFLAGS_VARIANT) $(LDFLAGS)

# ---- sources -------------------------------------------------------------------------------
PROTOS := $(wildcard proto/netreel/v1/*.proto) proto/grpc/health/v1/health.proto
PROTO_C := $(patsubst proto/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PROTO_H := $(PROTO_C:.c=.h)
TEST_PROTOS := $(wildcard tests/proto/*.proto)
TEST_PROTO_C := $(patsubst tests/proto/%.proto,$(GEN)/%.pb-c.c,$(TEST_PROTOS))
TEST_PROTO_H := $(TEST_PROTO_C:.c=.h)

LIB_SRCS := $(wildcard lib/*/*.c)
LIB_OBJS := $(patsubst %.c,$(B)/%.o,$(LIB_SRCS)) $(patsubst $(GEN)/%.c,$(B)/gen/%.o,$(PROTO_C))
LIB_A := $(B)/libnetreel.a

# Each services/NAME/ folder is the program netreel-NAME; cli/ is netreel.
SERVICES := $(notdir $(patsubst %/,%,$(dir $(wildcard services/*/*.c))))
SERVICE_BINS := $(foreach s,$(sort $(SERVICES)),$(B)/bin/netreel-$(s))
CLI_SRCS := $(wildcard cli/*.c)
CLI_BIN := $(if $(CLI_SRCS),$(B)/bin/netreel)
BINS := $(SERVICE_BINS) $(CLI_BIN)

# Test helpers: tests/integration/bin/NAME.c (plus shared tests/integration/bin/common/*.c).
TESTBIN_SRCS := $(wildcard tests/integration/bin/*.c)
TESTBIN_COMMON := $(wildcard tests/integration/bin/common/*.c)
TESTBINS := $(patsubst tests/integration/bin/%.c,$(B)/tests/%,$(TESTBIN_SRCS))
TEST_PROTO_OBJS := $(patsubst $(GEN)/%.c,$(B)/gen/%.o,$(TEST_PROTO_C))

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRCS))

FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/tests/fuzz/%,$(FUZZ_SRCS))

# The eBPF side (services/*/*/*.bpf.c and the kernel types it reads) is compiled for the BPF
# target only, by its own rule below.
BPF_HDRS := $(wildcard services/*/*/vmlinux_min.h)
HEADERS := $(filter-out $(BPF_HDRS),$(wildcard lib/*/*.h services/*/*.h services/*/*/*.h cli/*.h))

# ---- rules ---------------------------------------------------------------------------------
.SECONDEXPANSION:
# Generated sources and objects are not intermediate files to delete: other variants and the
# next `make` use them.
.SECONDARY:
.PHONY: all help deps test test-unit test-integration test-fuzz asan check format fuzz bench \
        install uninstall run clean
all: $(BINS) $(TESTBINS) $(UNIT_BINS) $(if $(and $(CLI_BIN),$(filter release,$(VARIANT))),$(BUILD)/netreel)

# The README's `build/netreel pcapdump ...`: the release CLI one step from the repository.
$(BUILD)/netreel: $(B)/bin/netreel
	$(Q)ln -sfn $(VARIANT)/bin/netreel $@

help:
	@echo 'make              build every program (build/release/bin) and the test programs'
	@echo 'make deps         install missing Debian packages with apt (no-op when all are present)'
	@echo 'make test         deps + build + every test; ends with "N passed, N failed"'
	@echo 'make run          deps + build + record this machine (IFACE=name to choose)'
	@echo 'make asan         unit and interop tests under ASan+UBSan (build/asan)'
	@echo 'make check        cppcheck + every header compiles on its own'
	@echo 'make format       clang-format every C file'
	@echo 'make fuzz         build the libFuzzer targets (build/fuzz); FUZZ_SECONDS=N make test-fuzz'
	@echo 'make bench        benchmarks, each next to a peer run in the same run (bench/)'
	@echo 'make install      PREFIX=/usr/local, and Wireshark'"'"'s extcap folder (EXTCAP_DIR=)'
	@echo 'V=1               print full command lines'

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: proto/%.proto
	$(call say,PROTOC,$<)
	$(Q)mkdir -p $(GEN) && protoc-c --c_out=$(GEN) -Iproto $<

$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: tests/proto/%.proto
	$(call say,PROTOC,$<)
	$(Q)mkdir -p $(GEN) && protoc-c --c_out=$(GEN) -Itests/proto -Iproto $<

# Every object may include generated headers: generate them first.
$(B)/%.o: %.c | $(PROTO_H) $(TEST_PROTO_H)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -c $< -o $@

# Test programs may include their shared helpers (common/); the library may not.
$(B)/tests/integration/bin/%.o: tests/integration/bin/%.c | $(PROTO_H) $(TEST_PROTO_H)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_CFLAGS) -Itests/integration/bin -c $< -o $@

$(B)/gen/%.o: $(GEN)/%.c | $(PROTO_H) $(TEST_PROTO_H)
	$(call say,CC,$<)
	$(Q)mkdir -p $(@D) && $(CC) $(filter-out -Wmissing-prototypes,$(ALL_CFLAGS)) -c $< -o $@

# ---- eBPF (netreel-capture --tls) --------------------------------------------------------------
# The program is compiled for the BPF target against the hand-written CO-RE types in
# vmlinux_min.h (no BTF needed on the build machine; libbpf relocates the fields against the
# running kernel's BTF at load), linked and stripped by bpftool, and embedded in the capture
# through a generated skeleton header. Not built with a variant's sanitizer flags: one copy in
# build/gen for every variant.
CLANG_BPF ?= clang
BPFTOOL ?= bpftool
BPF_ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
$(GEN)/capture/tls.bpf.o: services/capture/tls/tls.bpf.c services/capture/tls/record.h \
                          services/capture/tls/vmlinux_min.h
	$(call say,BPF,$<)
	$(Q)mkdir -p $(@D) && $(CLANG_BPF) -g -O2 -Wall -Werror -target bpf \
	    -D__TARGET_ARCH_$(BPF_ARCH) -Iservices/capture/tls -c $< -o $(@:.o=.tmp.o) && \
	    $(BPFTOOL) gen object $@ $(@:.o=.tmp.o) && rm -f $(@:.o=.tmp.o)

$(GEN)/capture/tls.skel.h: $(GEN)/capture/tls.bpf.o
	$(call say,SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name capture_tls_bpf > $@.tmp && mv $@.tmp $@

# The loader includes the skeleton: generate it first.
$(B)/services/capture/tls/probe.o: $(GEN)/capture/tls.skel.h

$(LIB_A): $(LIB_OBJS)
	$(call say,AR,$@)
	$(Q)rm -f $@ && ar rcs $@ $^

# (A function, not an inline patsubst: in a pattern rule's prerequisites every % is the stem.)
# A service's sources are services/NAME/*.c and services/NAME/*/*.c, but the eBPF programs.
service_objs = $(patsubst %.c,$(B)/%.o,$(filter-out %.bpf.c,$(wildcard services/$(1)/*.c \
    services/$(1)/*/*.c)))
$(B)/bin/netreel-capture $(B)/tests/unit/test_capture_% $(BUILD)/fuzz/tests/fuzz/fuzz_capture_%: \
    LDLIBS += $(BPF_LIBS)
$(B)/bin/netreel-%: $$(call service_objs,$$*) $(LIB_A)
	$(call say,LD,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/bin/netreel: $(patsubst %.c,$(B)/%.o,$(CLI_SRCS)) $(LIB_A)
	$(call say,LD,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/tests/integration/bin/%.o $(patsubst %.c,$(B)/%.o,$(TESTBIN_COMMON)) \
              $(TEST_PROTO_OBJS) $(LIB_A)
	$(call say,LD,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_LDFLAGS) -o $@ $^ $(LDLIBS)

# A unit test of a service (tests/unit/test_SERVICE_*.c) also links that service's objects but
# its main.o.
unit_service = $(word 2,$(subst _, ,$(1)))
unit_service_objs = $(if $(wildcard services/$(call unit_service,$(1))/main.c),$(filter-out \
    %/main.o,$(call service_objs,$(call unit_service,$(1)))))
$(B)/tests/unit/%: $(B)/tests/unit/%.o $$(call unit_service_objs,$$*) $(LIB_A)
	$(call say,LD,$@)
	$(Q)mkdir -p $(@D) && $(CC) $(ALL_LDFLAGS) -o $@ $^ -lcmocka $(LDLIBS)

# ---- fuzzing (clang + libFuzzer, ASan+UBSan) ------------------------------------------------
fuzz:
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory VARIANT=fuzz fuzz-bins
.PHONY: fuzz-bins
fuzz-bins: $(FUZZ_BINS)
# As unit tests, fuzz_SERVICE_* targets link that service's objects but its main.o.
$(BUILD)/fuzz/tests/fuzz/%: $(BUILD)/fuzz/tests/fuzz/%.o $$(call unit_service_objs,$$*) $(LIB_A)
	$(call say,LD,$@)
	$(Q)$(CC) -fsanitize=fuzzer,address,undefined $(LDFLAGS) -o $@ $^ $(LDLIBS)

# ---- set-up, tests, checks -----------------------------------------------------------------
# What `make format` formats and `make check` holds to .clang-format: every C file of the tree
# (without git, every one under the source folders).
FORMAT_SRCS = $(shell git ls-files '*.c' '*.h' 2>/dev/null || find lib services cli tests -name '*.[ch]')
FUZZ_SECONDS ?= 5
deps:
	$(Q)./mk/deps.sh

# Everything: release tests, the same unit and interop tests under ASan+UBSan, and each fuzz
# target for FUZZ_SECONDS.
test: deps
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory all
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory check
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory VARIANT=asan all
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory VARIANT=fuzz fuzz-bins
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) ./tests/run.sh --asan-build $(BUILD)/asan $(BUILD)/release

test-unit: all
	$(Q)./tests/run.sh --only unit $(BUILD)/release

test-integration: all
	$(Q)./tests/run.sh --only integration $(BUILD)/release

test-fuzz: fuzz
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) ./tests/run.sh --only fuzz $(BUILD)/release

asan: deps
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory VARIANT=asan all
	$(Q)./tests/run.sh --asan --only unit,integration $(BUILD)/asan

check: $(PROTO_H) $(TEST_PROTO_H)
	$(call say,CPPCHECK,'lib services cli tests')
	$(Q)cppcheck --quiet --error-exitcode=1 --std=c11 --inline-suppr \
	    --enable=warning,portability,performance --suppress=missingIncludeSystem \
	    -Ilib -Iservices -I$(GEN) -iservices/capture/tls/tls.bpf.c \
	    lib services cli tests/integration/bin
	$(call say,HEADERS,self-contained)
	$(Q)set -e; for h in $(HEADERS); do \
	    printf '#include "%s"\n#include "%s"\n' "$$h" "$$h" | \
	    $(CC) $(filter-out -MMD -MP,$(CFLAGS_BASE)) -I. -x c -fsyntax-only - || \
	    { echo "$$h is not self-contained"; exit 1; }; \
	done
	$(call say,REFS,'docs and code references')
	$(Q)/usr/bin/python3 mk/check-refs.py
	$(call say,FORMAT,'clang-format --dry-run')
	$(Q)clang-format --dry-run -Werror $(FORMAT_SRCS)

format:
	$(Q)clang-format -i $(FORMAT_SRCS)

bench: deps
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory all
	$(Q)./bench/run.sh $(BUILD)/release

# Wireshark's extcap folder, where install puts the interface "netreel: cluster" (docs/cli.md):
# the global "Extcap path" of `tshark -G folders`, else pkg-config's extcap_dir, else Debian's.
# Looked up once, and only by a recipe that uses it; EXTCAP_DIR=DIR sets it.
EXTCAP_DIR ?= $(eval EXTCAP_DIR := $(find_extcap_dir))$(EXTCAP_DIR)
find_extcap_dir = $(or \
    $(shell tshark -G folders 2>/dev/null | sed -nE 's/^(global )?extcap path:[[:space:]]*//Ip' | head -n 1), \
    $(shell pkg-config --variable=extcap_dir wireshark 2>/dev/null), \
    /usr/lib/$(shell uname -m)-linux-gnu/wireshark/extcap)

install: $(BINS)
	$(Q)install -d $(DESTDIR)$(PREFIX)/bin
	$(Q)for b in $(BINS); do install -m 0755 $$b $(DESTDIR)$(PREFIX)/bin/; done
	$(Q)if [ -d helm/netreel ]; then install -d $(DESTDIR)$(PREFIX)/share/netreel && \
	    cp -r helm/netreel $(DESTDIR)$(PREFIX)/share/netreel/; fi
	$(Q)install -d $(DESTDIR)$(PREFIX)/share/doc/netreel
	$(Q)install -m 0644 docs/cli.md $(DESTDIR)$(PREFIX)/share/doc/netreel/
	@echo "installed $(notdir $(BINS)) into $(DESTDIR)$(PREFIX)/bin"
	$(Q)install -d $(DESTDIR)$(EXTCAP_DIR)
	$(Q)ln -sfn $(PREFIX)/bin/netreel $(DESTDIR)$(EXTCAP_DIR)/netreel
	@echo "installed Wireshark's interface \"netreel: cluster\": $(DESTDIR)$(EXTCAP_DIR)/netreel"

uninstall:
	$(Q)rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(notdir $(BINS)))
	$(Q)rm -rf $(DESTDIR)$(PREFIX)/share/netreel $(DESTDIR)$(PREFIX)/share/doc/netreel
	$(Q)rm -f $(DESTDIR)$(EXTCAP_DIR)/netreel

IFACE ?=
run: deps
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory all
	$(Q)./mk/run.sh $(BUILD)/release "$(IFACE)"

clean:
	rm -rf build

# Optional fragments (mk/*.mk): targets that belong to one concern, e.g. the image and helm.
-include $(wildcard mk/*.mk)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
