# acidic_job: the two commands are `make test` and `make demo`.
# Every target first installs the Debian packages it needs (fast when present).

BUILD_DIR ?= build
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build test demo bench reliability soak clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

test: deps
	@scripts/test.sh

demo: build
	@echo "==> C demo: ride booking (examples/c/ride_booking.c)"
	@mkdir -p $(BUILD_DIR)/demo
	@rm -f $(BUILD_DIR)/demo/rides.db $(BUILD_DIR)/demo/rides.db-wal $(BUILD_DIR)/demo/rides.db-shm
	@echo
	@echo "---- first run: the payment provider is down ----"
	@$(BUILD_DIR)/ride_booking --db $(BUILD_DIR)/demo/rides.db --stripe-fails
	@echo
	@echo "---- second run: the payment provider is back ----"
	@$(BUILD_DIR)/ride_booking --db $(BUILD_DIR)/demo/rides.db
	@if [ -x examples/ruby/run.sh ] || [ -f examples/ruby/run.sh ]; then \
	  echo; echo "==> Ruby demo (examples/ruby/run.sh)"; bash examples/ruby/run.sh; fi
	@if [ -x examples/python/run.sh ] || [ -f examples/python/run.sh ]; then \
	  echo; echo "==> Python demo (examples/python/run.sh)"; bash examples/python/run.sh; fi

# The reliability suites of issue 9 (tests/reliability/run.sh): defect recipes, kill
# anywhere, PostgreSQL faults, bad input, fuzzing. Not part of `make test` yet: they
# reproduce defects the core still has. `make soak` is the long form.
reliability: deps
	@bash tests/reliability/run.sh

soak: deps
	@SOAK=1 bash tests/reliability/run.sh

bench: build
	@if [ -f bench/run.sh ]; then bash bench/run.sh; else echo "bench/run.sh does not exist yet"; fi

clean:
	rm -rf $(BUILD_DIR)
