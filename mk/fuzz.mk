# Long fuzzing: every libFuzzer target (tests/fuzz/fuzz_*.c) to FUZZ_RUNS executions under
# ASan+UBSan, one after another on one core, each from its seed corpus; one line per target.
#   make fuzz-long                     all targets, 1 000 000 executions each
#   make fuzz-long FUZZ_RUNS=100000    fewer
#   make fuzz-long FUZZ_TARGETS='fuzz_rpc_frame fuzz_store_index'
# `make test` runs the same targets for FUZZ_SECONDS each (tests/run.sh).
FUZZ_RUNS ?= 1000000
FUZZ_TARGETS ?=

.PHONY: fuzz-long
fuzz-long:
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory VARIANT=fuzz fuzz-bins
	$(Q)FUZZ_RUNS=$(FUZZ_RUNS) ./tests/fuzz/long.sh $(BUILD)/fuzz/tests/fuzz $(FUZZ_TARGETS)
