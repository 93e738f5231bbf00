# acidic_job: the two commands are `make test` and `make demo`.
# Every target first installs the Debian packages it needs (fast when present).
#
#   make install PREFIX=/usr/local   the header, the static and shared libraries,
#                                    acidic_job.pc and the find_package(acidic_job) files

BUILD_DIR ?= build
PREFIX ?= /usr/local
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build install test demo bench reliability soak clean

all: build

deps:
	@scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

install: build
	@cmake --install $(BUILD_DIR) --prefix $(PREFIX)

test: deps
	@scripts/test.sh

# The story only: each run.sh builds or installs what it needs quietly (and prints the
# log when that fails); the three tell the same story with the same data.
demo:
	@scripts/install-deps.sh >/dev/null 2>&1 || scripts/install-deps.sh
	@echo "==> C (examples/c/ride_booking.c)"
	@bash examples/c/run.sh
	@echo
	@echo "==> Ruby, an ActiveJob job (examples/ruby/ride_booking.rb)"
	@bash examples/ruby/run.sh
	@echo
	@echo "==> Python (examples/python/ride_booking.py)"
	@bash examples/python/run.sh

# The reliability suites of issue 9 (tests/reliability/run.sh): defect recipes, kill
# anywhere, PostgreSQL faults, bad input, fuzzing. `make test` runs their short form too
# (about 6 minutes); `make soak` is the long form (>= 5,000 kills per database, minutes of
# fuzzing per target: about 27 minutes), whose figures the README's Reliability section shows.
reliability: deps
	@bash tests/reliability/run.sh

soak: deps
	@SOAK=1 bash tests/reliability/run.sh

bench: build
	@if [ -f bench/run.sh ]; then bash bench/run.sh; else echo "bench/run.sh does not exist yet"; fi

clean:
	rm -rf $(BUILD_DIR)
