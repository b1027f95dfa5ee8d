# Cairn: one entry point for building, testing, running and benchmarking.
#
#   make              build everything (installs missing Debian packages first)
#   make test         ASan+UBSan build, every suite, the simulator's fuzzy tier, a clang build
#   make run          start a local 3-member cluster (N=1|3|5) and show how to use it; make stop
#   make sim          simulator sweep: SEEDS=N (default 100000), CAIRN_SEED=S replays one seed
#   make torture      fault-injection runs with a linearizability checker (DURATION SEEDS NODES)
#   make bench-storage  storage throughput benchmark (prints figures)
#   make bench          cluster benchmark with cairn-bench; make bench-vs-etcd: against etcd
#
# BUILD selects the output directory, SANITIZE=1 adds AddressSanitizer + UndefinedBehaviorSanitizer.

BUILD    ?= build
V        ?= 0
ifeq ($(V),1)
Q :=
else
Q := @
endif
SANITIZE ?= 0
SEEDS    ?= 100000
PREFIX   ?= /usr/local

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wundef -Wvla
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) $(CFLAGS) \
              -fPIC -I. -I$(BUILD)/gen -MMD -MP
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
SERVER_SRC   := $(wildcard server/*.c)
CLIENT_LIB_SRC := $(wildcard client/lib/*.c)
ITEST_LIB_SRC  := $(filter-out test/integration/test_%.c,$(wildcard test/integration/*.c))
# test/torture: a library (every .c but test_*.c and *_main.c), Check suites (test_*.c) and
# tools (<name>_main.c -> $(BUILD)/cairn-<name>).
TORTURE_LIB_SRC := $(filter-out test/torture/test_%.c test/torture/%_main.c,$(wildcard test/torture/*.c))
TORTURE_MAINS   := $(wildcard test/torture/*_main.c)
PROTO_GEN_H  := $(PROTO_GEN_C:.c=.h)

RAFT_OBJ     := $(RAFT_SRC:%.c=$(BUILD)/%.o)
STORAGE_OBJ  := $(STORAGE_SRC:%.c=$(BUILD)/%.o)
PROTO_OBJ    := $(PROTO_GEN_C:%.c=%.o)
SIM_LIB_OBJ  := $(SIM_LIB_SRC:%.c=$(BUILD)/%.o)
SERVER_OBJ   := $(SERVER_SRC:%.c=$(BUILD)/%.o)
CLIENT_LIB_OBJ := $(CLIENT_LIB_SRC:%.c=$(BUILD)/%.o)
ITEST_LIB_OBJ  := $(ITEST_LIB_SRC:%.c=$(BUILD)/%.o)
TORTURE_LIB_OBJ := $(TORTURE_LIB_SRC:%.c=$(BUILD)/%.o)
TORTURE_TOOLS   := $(patsubst test/torture/%_main.c,$(BUILD)/cairn-%,$(TORTURE_MAINS))

LIBRAFT    := $(BUILD)/libraft.a
LIBSTORAGE := $(BUILD)/libstorage.a
LIBPROTO   := $(BUILD)/libcairnproto.a
LIBCAIRN   := $(BUILD)/libcairn.a
LIBCAIRN_SO := $(BUILD)/libcairn.so
CAIRND     := $(BUILD)/cairnd
CAIRNCTL   := $(BUILD)/cairnctl
CAIRN_BENCH := $(BUILD)/cairn-bench
CLIENT_PROGS := $(if $(wildcard client/cairnctl.c),$(CAIRNCTL)) \
                $(if $(wildcard client/cairn-bench.c),$(CAIRN_BENCH))
EXAMPLES   := $(patsubst client/examples/%.c,$(BUILD)/examples/%,$(wildcard client/examples/*.c))

UNIT_RAFT_TESTS    := $(patsubst %.c,$(BUILD)/%,$(wildcard test/unit/test_raft*.c))
UNIT_STORAGE_TESTS := $(patsubst %.c,$(BUILD)/%,$(wildcard test/unit/test_storage*.c))
SIM_TESTS          := $(patsubst %.c,$(BUILD)/%,$(wildcard test/sim/test_*.c))
CLIENT_TESTS       := $(patsubst %.c,$(BUILD)/%,$(wildcard test/unit/test_client*.c))
INTEGRATION_TESTS  := $(patsubst %.c,$(BUILD)/%,$(wildcard test/integration/test_*.c))
TORTURE_TESTS      := $(patsubst %.c,$(BUILD)/%,$(wildcard test/torture/test_*.c))
SIM_FUZZ           := $(BUILD)/cairn-sim
BENCH_STORAGE      := $(BUILD)/bench-storage

TESTS := $(UNIT_RAFT_TESTS) $(UNIT_STORAGE_TESTS) $(SIM_TESTS) $(CLIENT_TESTS) \
         $(INTEGRATION_TESTS) $(TORTURE_TESTS)

.PHONY: all deps test check run stop sim sim-demo torture bench-storage bench bench-vs-etcd clean format install-deps install
.DEFAULT_GOAL := all

all: $(LIBRAFT) $(LIBSTORAGE) $(if $(SERVER_SRC),$(CAIRND)) \
     $(if $(CLIENT_LIB_SRC),$(LIBCAIRN) $(LIBCAIRN_SO) $(BUILD)/cairn.pc $(CLIENT_PROGS) $(EXAMPLES)) \
     $(TESTS) $(TORTURE_TOOLS) $(SIM_FUZZ) $(if $(wildcard test/bench/bench_storage.c),$(BENCH_STORAGE))

# ---- dependencies: installed on demand, once per build directory ----------
$(DEPS_STAMP): scripts/install-deps.sh
	@scripts/install-deps.sh
	@mkdir -p $(@D) && touch $@

deps install-deps:
	@scripts/install-deps.sh

# ---- compilation -----------------------------------------------------------
$(BUILD)/gen/proto/%.pb-c.c $(BUILD)/gen/proto/%.pb-c.h: proto/%.proto | $(DEPS_STAMP)
	@mkdir -p $(BUILD)/gen
	@echo "  PROTOC  $<"
	$(Q)protoc-c --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	@echo "  CC      $<"
	$(Q)$(CC) $(filter-out -Werror -Wmissing-prototypes,$(ALL_CFLAGS)) -c $< -o $@

$(BUILD)/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIBRAFT): $(RAFT_OBJ)
	@rm -f $@; $(AR) rcs $@ $^
$(LIBSTORAGE): $(STORAGE_OBJ)
	@rm -f $@; $(AR) rcs $@ $^
$(LIBPROTO): $(PROTO_OBJ)
	@rm -f $@; $(AR) rcs $@ $^
# libcairn carries the generated protobuf code it needs, so embedders link one library.
CLIENT_PROTO_OBJ := $(BUILD)/gen/proto/cairn.pb-c.o
$(LIBCAIRN): $(CLIENT_LIB_OBJ) $(CLIENT_PROTO_OBJ)
	@rm -f $@; $(AR) rcs $@ $^
$(LIBCAIRN_SO): $(CLIENT_LIB_OBJ) $(CLIENT_PROTO_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -shared -Wl,-soname,libcairn.so.0 $^ -o $@ $(PROTOBUF_LIBS) $(UV_LIBS)
$(BUILD)/cairn.pc: Makefile
	@mkdir -p $(@D)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: cairn' 'Description: C client library for the Cairn replicated key-value store' \
	  'Version: 0.1.0' 'Requires.private: libprotobuf-c libuv' \
	  'Libs: -L$${libdir} -lcairn' 'Libs.private: -lprotobuf-c -luv -pthread' \
	  'Cflags: -I$${includedir}' > $@

# Objects that include generated headers wait for protoc-c.
$(SERVER_OBJ) $(CLIENT_LIB_OBJ) $(BUILD)/client/cairnctl.o $(BUILD)/client/cairn-bench.o \
  $(CLIENT_TESTS:=.o) $(INTEGRATION_TESTS:=.o) $(ITEST_LIB_OBJ) $(TORTURE_LIB_OBJ) \
  $(TORTURE_TESTS:=.o) $(TORTURE_MAINS:%.c=$(BUILD)/%.o) $(EXAMPLES:$(BUILD)/examples/%=$(BUILD)/client/examples/%.o): \
  | $(PROTO_GEN_H)

$(CAIRND): $(SERVER_OBJ) $(LIBRAFT) $(LIBSTORAGE) $(LIBPROTO)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(UV_LIBS) $(LMDB_LIBS) $(PROTOBUF_LIBS) -lm
$(CAIRNCTL): $(BUILD)/client/cairnctl.o $(LIBCAIRN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(PROTOBUF_LIBS) $(UV_LIBS) -lm
$(CAIRN_BENCH): $(BUILD)/client/cairn-bench.o $(LIBCAIRN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(PROTOBUF_LIBS) $(UV_LIBS) -lm
$(BUILD)/examples/%: $(BUILD)/client/examples/%.o $(LIBCAIRN)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(PROTOBUF_LIBS) $(UV_LIBS)

# raft/ is tested alone: no libuv, LMDB or protobuf-c on its link line.
$(UNIT_RAFT_TESTS): $(BUILD)/test/unit/%: $(BUILD)/test/unit/%.o $(LIBRAFT)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(CHECK_LIBS)
$(UNIT_STORAGE_TESTS): $(BUILD)/test/unit/%: $(BUILD)/test/unit/%.o $(LIBSTORAGE)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(LMDB_LIBS) $(CHECK_LIBS)
$(SIM_TESTS): $(BUILD)/test/sim/%: $(BUILD)/test/sim/%.o $(SIM_LIB_OBJ) $(LIBRAFT)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(CHECK_LIBS)
$(SIM_FUZZ): $(BUILD)/test/sim/sim_fuzz.o $(SIM_LIB_OBJ) $(LIBRAFT)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ -lm
$(CLIENT_TESTS): $(BUILD)/test/unit/%: $(BUILD)/test/unit/%.o $(LIBCAIRN)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(PROTOBUF_LIBS) $(UV_LIBS) $(CHECK_LIBS)
# Integration tests drive real cairnd processes (found next to them in $(BUILD)).
$(INTEGRATION_TESTS): $(BUILD)/test/integration/%: $(BUILD)/test/integration/%.o $(ITEST_LIB_OBJ) \
                      $(LIBCAIRN) $(LIBPROTO) \
                      | $(CAIRND) $(CLIENT_PROGS)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $(filter %.o %.a,$^) -o $@ $(PROTOBUF_LIBS) $(UV_LIBS) $(CHECK_LIBS)
# Torture tools and tests may use libcairn and the integration harness (real clusters).
$(TORTURE_TESTS): $(BUILD)/test/torture/%: $(BUILD)/test/torture/%.o $(TORTURE_LIB_OBJ) \
                  $(ITEST_LIB_OBJ) $(LIBCAIRN) $(LIBPROTO) | $(CAIRND)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $(filter %.o %.a,$^) -o $@ $(PROTOBUF_LIBS) $(UV_LIBS) $(CHECK_LIBS)
$(BUILD)/cairn-%: $(BUILD)/test/torture/%_main.o $(TORTURE_LIB_OBJ) $(ITEST_LIB_OBJ) \
                  $(LIBCAIRN) $(LIBPROTO)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $(filter %.o %.a,$^) -o $@ $(PROTOBUF_LIBS) $(UV_LIBS) $(CHECK_LIBS)
$(BENCH_STORAGE): $(BUILD)/test/bench/bench_storage.o $(LIBSTORAGE)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) $^ -o $@ $(LMDB_LIBS)

# ---- tests -----------------------------------------------------------------
# `make test` is what CI runs: a -Werror build under clang (both compilers stay clean), then
# with sanitizers on every suite and a short simulator sweep.
TEST_SEEDS ?= 2000
test:
	$(MAKE) --no-print-directory CC=clang BUILD=build/clang all
	$(MAKE) --no-print-directory SANITIZE=1 BUILD=build/san check

check: all
	@set -e; for t in $(TESTS); do echo "== $$t"; CK_FORK=yes CAIRN_BUILD=$(BUILD) $$t; done
	@echo "== $(SIM_FUZZ) (fuzzy tier, $(TEST_SEEDS) seeds)"
	@$(SIM_FUZZ) --seeds $(TEST_SEEDS)

sim: $(SIM_FUZZ)
	@if [ -n "$$CAIRN_SEED" ]; then $(SIM_FUZZ) --seed "$$CAIRN_SEED" --verbose; \
	 else $(SIM_FUZZ) --seeds $(SEEDS); fi

bench-storage: $(BENCH_STORAGE)
	$(BENCH_STORAGE)

# Long fault-injection runs against real clusters (docs/torture.md):
#   make torture DURATION=300 SEEDS=20 NODES=5 [START=1] [FAULTS=all] [TORTURE_FLAGS=--overlap]
DURATION ?= 60
NODES    ?= 3
START    ?= 1
FAULTS   ?= all
TORTURE_SEEDS = $(if $(filter command line environment,$(origin SEEDS)),$(SEEDS),10)
torture: $(BUILD)/cairn-torture $(CAIRND)
	CAIRN_BUILD=$(BUILD) $(BUILD)/cairn-torture --seeds $(TORTURE_SEEDS) --start $(START) \
	  --duration $(DURATION)s --nodes $(NODES) --faults $(FAULTS) --out torture-out $(TORTURE_FLAGS)

# Cairn alone under load (3 local members), report in $(BUILD)/bench/; and side by side with
# etcd 3.4 on this machine -> docs/benchmarks/<date>.md (QUICK=1: a short smoke run).
bench: all
	@SYSTEMS=cairn OUT_DIR=$(abspath $(BUILD))/bench UPDATE_README=0 BUILD=$(abspath $(BUILD)) \
	  scripts/bench-vs-etcd.sh
bench-vs-etcd: all
	@BUILD=$(abspath $(BUILD)) scripts/bench-vs-etcd.sh

# Starts a local 3-member cluster in .cluster/ (N=1|3|5 to change) and prints what to try.
N ?= 3
run: all
	@BUILD=$(abspath $(BUILD)) scripts/cluster.sh start $(N)

stop:
	@scripts/cluster.sh stop

sim-demo: $(SIM_FUZZ)
	@$(SIM_FUZZ) --demo

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(CAIRND) $(CLIENT_PROGS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(LIBCAIRN) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIBCAIRN_SO) $(DESTDIR)$(PREFIX)/lib/libcairn.so.0
	ln -sf libcairn.so.0 $(DESTDIR)$(PREFIX)/lib/libcairn.so
	install -m 644 client/cairn.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/cairn.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
