# attnlab — build, test, check and bench.
#   make            build ./train, ./infer and ./compare
#   make test       build and run every test (unit, gradient checks, CLI, PyTorch twin)
#   make check      unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      performance report (tokens/s, MFU, scaling); see docs/performance.md
# Toggles: DEBUG=1 (-O0 -g), OMP=0 (no OpenMP), NATIVE=0 (portable -O3 without -march=native),
#          SAN=1 (sanitizers; what `make check` uses), MPI=0|1 (below; default: on when mpicc is found).

CC      ?= cc
DEBUG   ?= 0
OMP     ?= 1
NATIVE  ?= 1
SAN     ?= 0

# OpenBLAS, preferably Debian's OpenMP build (libopenblas-openmp-dev; see docs/design.md "Threads"):
# pkg-config, first in that build's own directory under the multiarch triplet, then wherever pkg-config
# looks; without a .pc file, that build's include directory and plain -lopenblas.
MULTIARCH     := $(shell $(CC) -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
OPENBLAS_PC   := PKG_CONFIG_PATH=/usr/lib/$(MULTIARCH)/openblas-openmp/pkgconfig$${PKG_CONFIG_PATH:+:$$PKG_CONFIG_PATH} pkg-config openblas
OPENBLAS_LIBS := $(shell $(OPENBLAS_PC) --libs 2>/dev/null)
ifneq ($(strip $(OPENBLAS_LIBS)),)
  OPENBLAS_CFLAGS := $(shell $(OPENBLAS_PC) --cflags 2>/dev/null)
else
  OPENBLAS_CFLAGS := -I/usr/include/$(MULTIARCH)/openblas-openmp
  OPENBLAS_LIBS   := -lopenblas
endif

# PCRE2 (8-bit; libpcre2-dev) for BPE's pre-tokenization split (tokenizer/pretok.c): Unicode
# properties are built into Debian's library, JIT is used when present.
PCRE2_CFLAGS := $(shell pkg-config --cflags libpcre2-8 2>/dev/null)
PCRE2_LIBS   := $(or $(shell pkg-config --libs libpcre2-8 2>/dev/null),-lpcre2-8)

CPPFLAGS := -I. $(OPENBLAS_CFLAGS) $(PCRE2_CFLAGS) -D_GNU_SOURCE
CFLAGS   := -std=c11 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wno-unused-parameter -MMD -MP -g
LDLIBS   := $(OPENBLAS_LIBS) $(PCRE2_LIBS) -lcjson -lm

ifeq ($(DEBUG),1)
  CFLAGS += -O0
  VARIANT := debug
else
  CFLAGS += -O3
  VARIANT := release
endif
ifeq ($(NATIVE),1)
  CFLAGS += -march=native
else
  VARIANT := $(VARIANT)-portable
endif
ifeq ($(OMP),1)
  CFLAGS += -fopenmp
  LDFLAGS += -fopenmp
else
  CFLAGS += -Wno-unknown-pragmas
  VARIANT := $(VARIANT)-noomp
endif
ifeq ($(SAN),1)
  CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
  VARIANT := $(VARIANT)-san
endif

BUILD   := build/$(VARIANT)
LIB_SRC := $(wildcard base/*.c model/*.c blocks/*.c checkpoint/*.c data/*.c tokenizer/*.c cli/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

# MPI data parallel (docs/mpi.md): dist/ is linked into train alone (not the library: the fuzz
# harnesses link every library object); dist/dist.c is the only file that includes mpi.h. MPI=1 compiles it against OpenMPI (the flags of its wrapper `mpicc --showme`; Debian's
# libopenmpi-dev and openmpi-bin), MPI=0 as the one-process stub; the default is 1 when mpicc answers.
.DEFAULT_GOAL := all
MPICC      ?= mpicc
MPI_CFLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell $(MPICC) --showme:link 2>/dev/null)
MPI        ?= $(if $(strip $(MPI_LIBS)),1,0)
ifeq ($(MPI),1)
  ifeq ($(strip $(MPI_LIBS)),)
    $(error MPI=1 but '$(MPICC) --showme' answers nothing: install libopenmpi-dev and openmpi-bin)
  endif
  DIST_OBJ  := $(BUILD)/dist-mpi/dist.o $(BUILD)/dist/grad_sync.o
  TRAIN_MPI_LIBS := $(MPI_LIBS)
else
  DIST_OBJ  := $(BUILD)/dist-single/dist.o $(BUILD)/dist/grad_sync.o
  TRAIN_MPI_LIBS :=
endif
# train relinks when MPI changes: this file holds the setting and is rewritten only when it differs.
DIST_FLAVOR := $(BUILD)/dist-flavor
ifneq ($(MAKECMDGOALS),clean)
  $(shell mkdir -p $(BUILD) && [ "$$(cat $(DIST_FLAVOR) 2>/dev/null)" = "$(MPI)" ] || echo "$(MPI)" >$(DIST_FLAVOR))
endif
$(BUILD)/dist-mpi/dist.o: dist/dist.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(MPI_CFLAGS) -DATTNLAB_MPI $(CFLAGS) -c $< -o $@
$(BUILD)/dist-single/dist.o: dist/dist.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

.PHONY: all test unit check bench clean info train infer compare tests-build
all: info train infer compare

info:
	@echo "attnlab build: $(VARIANT) (CC=$(CC), OpenMP=$(OMP), native=$(NATIVE), sanitizers=$(SAN), MPI=$(MPI))"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/libattnlab.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/train: $(BUILD)/train.o $(DIST_OBJ) $(BUILD)/libattnlab.a $(DIST_FLAVOR)
	$(CC) $(LDFLAGS) $(filter-out $(DIST_FLAVOR),$^) $(LDLIBS) $(TRAIN_MPI_LIBS) -o $@
$(BUILD)/infer: $(BUILD)/infer.o $(BUILD)/libattnlab.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/compare: $(BUILD)/compare.o $(BUILD)/libattnlab.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libattnlab.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@
# AdamW's sqrtf vectorizes only without errno (v ≥ 0, and IEEE sqrt/div are exact either way).
$(BUILD)/model/optim.o: CFLAGS += -fno-math-errno
# test_noalloc counts every allocation attnlab's own code makes (wrapped at link time).
$(BUILD)/tests/test_noalloc: LDFLAGS += -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=aligned_alloc
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/libattnlab.a
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The user-facing binaries live at the top level; replaced by rename, so a running ./train keeps
# its file (a plain cp fails with "Text file busy").
train: $(BUILD)/train
	cp $< $@.tmp && mv -f $@.tmp $@
infer: $(BUILD)/infer
	cp $< $@.tmp && mv -f $@.tmp $@
compare: $(BUILD)/compare
	cp $< $@.tmp && mv -f $@.tmp $@

tests-build: $(TEST_BIN) $(BUILD)/train $(BUILD)/infer $(BUILD)/compare train infer compare

# Every test: unit binaries, then the command-line and PyTorch-twin scripts.
test: tests-build
	@BUILD=$(BUILD) bash tests/run.sh

# Unit tests only (what `make check` runs under the sanitizers).
unit: $(TEST_BIN) $(BUILD)/train $(BUILD)/infer
	@BUILD=$(BUILD) bash tests/run.sh --unit

check:
	$(MAKE) SAN=1 NATIVE=$(NATIVE) unit

bench: all $(BENCH_BIN)
	@BUILD=$(BUILD) bash bench/run.sh

clean:
	rm -rf build train infer compare

-include $(shell find build -name '*.d' 2>/dev/null)

# --- Fuzzing (docs/testing.md "Fuzzing"): libFuzzer harnesses fuzz/fuzz_*.c, built with clang under
# ASan+UBSan into build/fuzz; seeds from fuzz/make_corpus.sh.
#   make fuzz FUZZ_SECONDS=N   run each harness for N seconds (one after another)
#   make fuzz-smoke            each for a few seconds (what tests/cli_fuzz_smoke.sh runs)
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build/fuzz
FUZZ_FLAGS   := -std=c11 -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined -Wno-unknown-pragmas
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BIN     := $(patsubst fuzz/%.c,$(FUZZ_BUILD)/%,$(wildcard fuzz/fuzz_*.c))
.PHONY: fuzz fuzz-build fuzz-smoke
$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_FLAGS) -fsanitize=fuzzer $^ $(LDLIBS) -o $@
$(FUZZ_BUILD)/fuzz_args: LDLIBS += -Wl,--wrap=exit
fuzz-build: $(FUZZ_BIN) train
fuzz: fuzz-build
	@bash fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)
fuzz-smoke: fuzz-build
	@bash fuzz/run.sh 4 $(FUZZ_BIN)
