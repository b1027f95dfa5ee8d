# Cairn: one entry point for building, testing, running and benchmarking.
#
#   make              build everything (installs missing Debian packages first)
#   make test         ASan+UBSan build, every suite, the simulator's fuzzy tier, a clang build
#   make run          start a local node / cluster and show how to use it
#   make sim          simulator sweep: SEEDS=N (default 100000), CAIRN_SEED=S replays one seed
#   make bench-storage  storage throughput benchmark (prints figures)
#
# BUILD selects the output directory, SANITIZE=1 adds AddressSanitizer + UndefinedBehaviorSanitizer.

BUILD    ?= build
SANITIZE ?= 0
SEEDS    ?= 100000
PREFIX   ?= /usr/local

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wundef -Wvla
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) $(CFLAGS) \
              -I. -I$(BUILD)/gen -MMD -MP
ALL_LDFLAGS := $(LDFLAGS)
ifeq ($(SANITIZE),1)
ALL_CFLAGS  += -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ALL_LDFLAGS += -fsanitize=address,undefined
endif

CHECK_LIBS   := -lcheck_pic -lsubunit -lm -lrt -pthread
LMDB_LIBS    := -llmdb -pthread
UV_LIBS      := -luv -pthread
PROTOBUF_LIBS := -lprotobuf-c

DEPS_STAMP := $(BUILD)/.deps-ok

# ---- sources ---------------------------------------------------------------
RAFT_SRC     := $(wildcard raft/*.c)
STORAGE_SRC  := $(wildcard storage/*.c)
PROTO_SRC    := $(wildcard proto/*.proto)
PROTO_GEN_C  := $(patsubst proto/%.proto,$(BUILD)/gen/proto/%.pb-c.c,$(PROTO_SRC))
SIM_LIB_SRC  := $(filter-out test/sim/test_%.c test/sim/sim_fuzz.c,$(wildcard test/sim/*.c))

RAFT_OBJ     := $(RAFT_SRC:%.c=$(BUILD)/%.o)
STORAGE_OBJ  := $(STORAGE_SRC:%.c=$(BUILD)/%.o)
PROTO_OBJ    := $(PROTO_GEN_C:%.c=%.o)
SIM_LIB_OBJ  := $(SIM_LIB_SRC:%.c=$(BUILD)/%.o)

LIBRAFT    := $(BUILD)/libraft.a
LIBSTORAGE := $(BUILD)/libstorage.a
LIBPROTO   := $(BUILD)/libcairnproto.a

UNIT_RAFT_TESTS    := $(patsubst %.c,$(BUILD)/%,$(wildcard test/unit/test_raft*.c))
UNIT_STORAGE_TESTS := $(patsubst %.c,$(BUILD)/%,$(wildcard test/unit/test_storage*.c))
SIM_TESTS          := $(patsubst %.c,$(BUILD)/%,$(wildcard test/sim/test_*.c))
SIM_FUZZ           := $(BUILD)/cairn-sim
BENCH_STORAGE      := $(BUILD)/bench-storage

TESTS := $(UNIT_RAFT_TESTS) $(UNIT_STORAGE_TESTS) $(SIM_TESTS)

.PHONY: all deps test check run sim bench-storage clean format install-deps
.DEFAULT_GOAL := all

all: $(LIBRAFT) $(LIBSTORAGE) $(TESTS) $(SIM_FUZZ) $(if $(wildcard test/bench/bench_storage.c),$(BENCH_STORAGE))

# ---- dependencies: installed on demand, once per build directory ----------
$(DEPS_STAMP): scripts/install-deps.sh
	@scripts/install-deps.sh
	@mkdir -p $(@D) && touch $@

deps install-deps:
	@scripts/install-deps.sh

# ---- compilation -----------------------------------------------------------
$(BUILD)/gen/proto/%.pb-c.c $(BUILD)/gen/proto/%.pb-c.h: proto/%.proto | $(DEPS_STAMP)
	@mkdir -p $(BUILD)/gen
	protoc-c --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(filter-out -Werror -Wmissing-prototypes,$(ALL_CFLAGS)) -c $< -o $@

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIBRAFT): $(RAFT_OBJ)
	@rm -f $@; $(AR) rcs $@ $^
$(LIBSTORAGE): $(STORAGE_OBJ)
	@rm -f $@; $(AR) rcs $@ $^
$(LIBPROTO): $(PROTO_OBJ)
	@rm -f $@; $(AR) rcs $@ $^

# raft/ is tested alone: no libuv, LMDB or protobuf-c on its link line.
$(UNIT_RAFT_TESTS): $(BUILD)/test/unit/%: $(BUILD)/test/unit/%.o $(LIBRAFT)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(CHECK_LIBS)
$(UNIT_STORAGE_TESTS): $(BUILD)/test/unit/%: $(BUILD)/test/unit/%.o $(LIBSTORAGE)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(LMDB_LIBS) $(CHECK_LIBS)
$(SIM_TESTS): $(BUILD)/test/sim/%: $(BUILD)/test/sim/%.o $(SIM_LIB_OBJ) $(LIBRAFT)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(CHECK_LIBS)
$(SIM_FUZZ): $(BUILD)/test/sim/sim_fuzz.o $(SIM_LIB_OBJ) $(LIBRAFT)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ -lm
$(BENCH_STORAGE): $(BUILD)/test/bench/bench_storage.o $(LIBSTORAGE)
	$(CC) $(ALL_LDFLAGS) $^ -o $@ $(LMDB_LIBS)

# ---- tests -----------------------------------------------------------------
# `make test` is what CI runs: sanitizers on, every suite, a short simulator sweep,
# and a -Werror build under clang so both compilers stay clean.
TEST_SEEDS ?= 2000
test:
	$(MAKE) --no-print-directory SANITIZE=1 BUILD=build/san check
	$(MAKE) --no-print-directory CC=clang BUILD=build/clang all

check: all
	@set -e; for t in $(TESTS); do echo "== $$t"; CK_FORK=yes $$t; done
	@echo "== $(SIM_FUZZ) (fuzzy tier, $(TEST_SEEDS) seeds)"
	@$(SIM_FUZZ) --seeds $(TEST_SEEDS)

sim: $(SIM_FUZZ)
	@if [ -n "$$CAIRN_SEED" ]; then $(SIM_FUZZ) --seed "$$CAIRN_SEED" --verbose; \
	 else $(SIM_FUZZ) --seeds $(SEEDS); fi

bench-storage: $(BENCH_STORAGE)
	$(BENCH_STORAGE)

run: all
	@$(SIM_FUZZ) --demo

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
