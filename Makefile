# nader - build, test and measure.
#
#   make            build everything into build/
#   make deps       install the Debian packages the project needs
#   make test       build and run every test (tests/run.sh)
#   make asan       build into build-asan/ with ASan+UBSan and run the tests
#   make fuzz       build the libFuzzer targets and fuzz for FUZZ_SECONDS
#   make bench      build and run the benchmarks (they print figures)
#   make engine     only the engine and the GPU check's tools, against
#                   libjansson, OpenBLAS and libsodium (for GPU machines;
#                   docs/gpu.md)
#   make format     apply .clang-format
#
# Sources are found by folder, so a new file needs no edit here:
#   common/*.c, worker/engine/*.c, worker/*.c, coordinator/*.c  -> libnader.a
#   worker/cuda/*.cu -> lib/nader-cuda.so, opened at run time by the
#                       programs that use a GPU (when nvcc is found and
#                       NO_CUDA is unset)
#   cli/*.c -> nader; coordinator/main.c -> nader-coordinator;
#   worker/main.c -> nader-worker; tests/unit/test_*.c -> build/tests/;
#   tests/tools/*.c -> build/tools/ (programs tests drive);
#   tests/bench/bench_*.c -> build/bench/; tests/fuzz/fuzz_*.c (clang).

BUILD ?= build
CC ?= gcc
OPT ?= -O2
SAN ?=

PKGS := libzmq libczmq libprotobuf-c lmdb jansson yaml-0.1 libcurl \
        libsodium openblas libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

INCLUDES := -Icommon -Iworker/engine -Iworker -Icoordinator -Icli \
            -I$(BUILD)/gen
CFLAGS_ALL := -std=gnu11 $(OPT) -g -Wall -Wextra -fopenmp -MMD -MP \
              $(INCLUDES) $(PKG_CFLAGS) $(SAN) $(EXTRA_CFLAGS)
LDLIBS_ALL := $(PKG_LIBS) -lm -lpthread -ldl -fopenmp $(SAN)

# --- CUDA, when the toolkit is there --------------------------------------
NVCC ?= $(shell command -v nvcc 2>/dev/null || \
          { test -x /usr/local/cuda/bin/nvcc && \
            echo /usr/local/cuda/bin/nvcc; })
CUDA_SRC := $(wildcard worker/cuda/*.cu)
ifeq ($(NO_CUDA),)
ifneq ($(NVCC),)
ifneq ($(CUDA_SRC),)
HAVE_CUDA := 1
endif
endif
endif
ifeq ($(HAVE_CUDA),1)
CUDA_HOME := $(patsubst %/bin/nvcc,%,$(NVCC))
CFLAGS_ALL += -DNADER_HAVE_CUDA
# Native code for Hopper (sm_90) and PTX that newer GPUs compile at load.
CUDA_ARCH ?= -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90 \
             -gencode arch=compute_80,code=sm_80 \
             -gencode arch=compute_75,code=compute_75
# cuDNN outside the toolkit (a pip wheel's nvidia/cudnn, say): CUDNN_HOME.
ifneq ($(CUDNN_HOME),)
CUDNN_INC := -I$(CUDNN_HOME)/include
CUDNN_LIB := -L$(CUDNN_HOME)/lib -Wl,-rpath,$(CUDNN_HOME)/lib
endif
NVCCFLAGS := -O3 -std=c++17 $(CUDA_ARCH) -lineinfo -DNADER_HAVE_CUDA \
             -Xcompiler -Wall,-Wextra,-fPIC $(INCLUDES) $(CUDNN_INC) -MMD -MP
CUDA_LIBS := $(CUDNN_LIB) -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 \
             -lcudnn -lcublasLt -lcublas -lcudart -lstdc++
endif

# --- sources ----------------------------------------------------------------
PROTO := $(wildcard proto/*.proto)
PROTO_C := $(patsubst proto/%.proto,$(BUILD)/gen/%.pb-c.c,$(PROTO))
PROTO_H := $(PROTO_C:.c=.h)

LIB_SRC := $(wildcard common/*.c) $(wildcard worker/engine/*.c) \
           $(filter-out worker/main.c,$(wildcard worker/*.c)) \
           $(filter-out coordinator/main.c,$(wildcard coordinator/*.c))
LIB_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) \
           $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(PROTO_C))
# The CUDA backend is a library of its own (worker/engine/backend.c opens
# it), with the one C file it uses compiled position-independent.
CUDA_PLUGIN :=
ifeq ($(HAVE_CUDA),1)
CUDA_PLUGIN := $(BUILD)/lib/nader-cuda.so
CUDA_OBJ := $(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(CUDA_SRC)) \
            $(BUILD)/obj/pic/common/graph_ops.o
endif

# Text files embedded into the library as C strings (the prompts).
PROMPT_TXT := $(wildcard prompts/*.txt)
ifneq ($(PROMPT_TXT),)
LIB_OBJ += $(BUILD)/obj/gen/prompts.o
endif

CLI_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard cli/*.c))
# Pages compiled into nader as C strings: cli/NAME_page.html -> NAME_page.h
PAGES := $(patsubst cli/%.html,$(BUILD)/gen/%.h,$(wildcard cli/*_page.html))
EMBEDS := $(BUILD)/gen/quickstart_yaml.h $(BUILD)/gen/quickstart_base.h
# A text file ($<) as the lines of one C string literal ($@).
EMBED_TEXT = sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' \
  $< >$@.tmp && mv $@.tmp $@
BINS := $(BUILD)/nader
ifneq ($(wildcard coordinator/main.c),)
BINS += $(BUILD)/nader-coordinator
endif
ifneq ($(wildcard worker/main.c),)
BINS += $(BUILD)/nader-worker
endif

TEST_SRC := $(wildcard tests/unit/test_*.c)
TEST_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
BENCH_BIN := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))

.PHONY: all test asan fuzz bench format deps clean tests benches engine
all: $(BINS) $(CUDA_PLUGIN) tests benches

tests: $(TEST_BIN) $(TOOL_BIN)
benches: $(BENCH_BIN)

# --- rules ------------------------------------------------------------------
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: proto/%.proto
	@mkdir -p $(dir $@)
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen $<

$(BUILD)/gen/prompts.c: $(PROMPT_TXT) prompts/embed.sh
	@mkdir -p $(dir $@)
	sh prompts/embed.sh $(PROMPT_TXT) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/%_page.h: cli/%_page.html
	@mkdir -p $(dir $@)
	$(EMBED_TEXT)
$(CLI_OBJ): $(PAGES) $(EMBEDS)

# The built-in experiment of a bare `nader run`: the quickstart and its
# base design, compiled in as C strings.
$(BUILD)/gen/quickstart_yaml.h: examples/quickstart.yaml
	@mkdir -p $(dir $@)
	$(EMBED_TEXT)
$(BUILD)/gen/quickstart_base.h: examples/blocks/resnet_basic.txt
	@mkdir -p $(dir $@)
	$(EMBED_TEXT)

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/obj/%.o: %.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

# The engine's kernels are hot: optimise them harder.
$(BUILD)/obj/worker/engine/%.o: worker/engine/%.c $(PROTO_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -O3 -c -o $@ $<

$(BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c -o $@ $<

$(BUILD)/obj/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -fPIC -c -o $@ $<

$(BUILD)/lib/nader-cuda.so: $(CUDA_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ $(CUDA_LIBS) $(SAN)

$(BUILD)/libnader.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/nader: $(CLI_OBJ) $(BUILD)/libnader.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/nader-coordinator: $(BUILD)/obj/coordinator/main.o \
                            $(BUILD)/libnader.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/nader-worker: $(BUILD)/obj/worker/main.o $(BUILD)/libnader.a
	$(CC) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/libnader.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ -lcmocka $(LDLIBS_ALL)

# Helper programs that tests drive (not tests themselves).
$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(BUILD)/libnader.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(BUILD)/libnader.a
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDLIBS_ALL)

# --- the engine alone, for GPU machines (tests/gpu/check.sh) ---------------
# A machine lent for its GPU may lack the daemons' libraries (ZeroMQ, LMDB,
# libyaml, ...).  `make engine` builds what training needs, against
# libjansson, OpenBLAS and libsodium (designs' hashes) only, into
# $(ENGINE_BUILD): the graph library, the engine, the CUDA backend,
# nader-train (cli/cmd_train.c behind a one-command main) and the GPU
# check's tools.  ENGINE_CFLAGS and ENGINE_LIBS say where those libraries
# are when pkg-config cannot.  tests/integration/engine_build.sh builds
# it without CUDA in every test run.
ENGINE_BUILD ?= build-engine
ENGINE_CFLAGS ?= $(shell pkg-config --cflags jansson openblas libsodium \
                   2>/dev/null)
ENGINE_LIBS ?= $(shell pkg-config --libs jansson openblas libsodium \
                 2>/dev/null || echo -ljansson -lopenblas -lsodium)
ENGINE_SRC := $(wildcard common/graph*.c common/net*.c common/log.c) \
              $(wildcard worker/engine/*.c)
ENGINE_OBJ := $(patsubst %.c,$(ENGINE_BUILD)/obj/%.o,$(ENGINE_SRC))
ENGINE_PLUGIN :=
ifeq ($(HAVE_CUDA),1)
ENGINE_PLUGIN := $(ENGINE_BUILD)/lib/nader-cuda.so
ENGINE_CUDA_OBJ := $(patsubst %.cu,$(ENGINE_BUILD)/obj/%.cu.o,$(CUDA_SRC)) \
                   $(ENGINE_BUILD)/obj/pic/common/graph_ops.o
ENGINE_DEFS := -DNADER_HAVE_CUDA
endif
ENGINE_CFLAGS_ALL := -std=gnu11 $(OPT) -g -Wall -Wextra -fopenmp -MMD -MP \
                     $(INCLUDES) $(ENGINE_CFLAGS) $(ENGINE_DEFS)
ENGINE_LDLIBS := $(ENGINE_LIBS) -lm -lpthread -ldl -fopenmp
ENGINE_CHECK_TOOLS := $(ENGINE_BUILD)/cuda_parity $(ENGINE_BUILD)/gpu_train
ENGINE_TOOLS := $(ENGINE_CHECK_TOOLS) $(ENGINE_PLUGIN)
ifneq ($(wildcard cli/cmd_train.c),)
ENGINE_TOOLS += $(ENGINE_BUILD)/nader-train
endif

engine: $(ENGINE_TOOLS)

$(ENGINE_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ENGINE_CFLAGS_ALL) -c -o $@ $<

$(ENGINE_BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c -o $@ $<

$(ENGINE_BUILD)/obj/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ENGINE_CFLAGS_ALL) -fPIC -c -o $@ $<

$(ENGINE_BUILD)/lib/nader-cuda.so: $(ENGINE_CUDA_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ $(CUDA_LIBS)

$(ENGINE_BUILD)/libengine.a: $(ENGINE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(ENGINE_CHECK_TOOLS): $(ENGINE_BUILD)/%: $(ENGINE_BUILD)/obj/tests/tools/%.o \
                                          $(ENGINE_BUILD)/libengine.a
	$(CC) -o $@ $^ $(ENGINE_LDLIBS)

$(ENGINE_BUILD)/nader-train: $(ENGINE_BUILD)/obj/tests/gpu/train_main.o \
                             $(ENGINE_BUILD)/obj/cli/cmd_train.o \
                             $(ENGINE_BUILD)/libengine.a
	$(CC) -o $@ $^ $(ENGINE_LDLIBS)

# --- top-level jobs ---------------------------------------------------------
test: all
	BUILD=$(BUILD) bash tests/run.sh $(T)

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer" test

FUZZ_SECONDS ?= 60
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_LIB_SRC := $(wildcard common/*.c)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC) $(PROTO_C)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined $(INCLUDES) \
	  $(PKG_CFLAGS) -o $@ $< $(FUZZ_LIB_SRC) $(PROTO_C) $(PKG_LIBS) -lm
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	  mkdir -p $(BUILD)/fuzz/corpus-$$(basename $$f); \
	  echo "fuzzing $$f for $(FUZZ_SECONDS) s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) $(BUILD)/fuzz/corpus-$$(basename $$f) \
	    tests/fuzz/seeds || exit 1; \
	done

bench: all
	BUILD=$(BUILD) bash tests/bench/run.sh $(B)

format:
	clang-format -i $$(git ls-files '*.c' '*.h' '*.cu')

DEB_PACKAGES := build-essential pkg-config clang libclang-rt-14-dev \
  libzmq3-dev libczmq-dev libprotobuf-c-dev protobuf-c-compiler \
  liblmdb-dev lmdb-utils libjansson-dev libyaml-dev libcmocka-dev \
  libopenblas-dev libcurl4-openssl-dev libsodium-dev libmicrohttpd-dev \
  python3 python3-numpy python3-torch python3-sklearn python3-yaml \
  curl chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
deps:
	$(SUDO) apt-get update
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y \
	  --no-install-recommends $(DEB_PACKAGES)

clean:
	rm -rf build build-asan $(ENGINE_BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
-include $(shell find $(ENGINE_BUILD)/obj -name '*.d' 2>/dev/null)
