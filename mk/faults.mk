# Fault injection (issue 7): the long tests of tests/integration/faults/, marked
# @pytest.mark.faults, which `make test` skips (their fast siblings run there).
#   make test-faults   deps + the release build + those tests, against build/release; ends with
#                      "N passed, N failed" (about 5 minutes; root: namespaces, tmpfs, SIGSTOP)
.PHONY: test-faults
test-faults: deps
	$(Q)$(MAKE) -j$(NPROC) --no-print-directory VARIANT=release all
	$(Q)./tests/run.sh --only faults $(BUILD)/release
