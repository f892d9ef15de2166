# Thin wrapper over CMake: `make run` and `make test` are the two commands of
# the README; everything else is a convenience for developers.
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all build run test unit integration asan fuzz bench clean deps deps-test tidy format

all: build

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)
	@scripts/web.sh $(BUILD)/web

# make run ARGS="--listen 127.0.0.1:9000": ARGS go to parley serve.
run: build
	$(BUILD)/parley serve $(ARGS)

test: deps-test
	@scripts/test.sh

unit: build
	cd $(BUILD) && ctest --output-on-failure

fuzz: deps-test
	@FUZZ_SEED=0 scripts/fuzz.sh 60

bench: build
	@echo "see bench/README.md; e.g. $(BUILD)/parley bench fanout --help"

tidy: build
	clang-tidy -p $(BUILD) --quiet src/*/*.c src/*/*/*.c

format:
	clang-format -i src/*/*.c src/*/*.h src/*/*/*.c src/*/*/*.h tests/unit/*.c tests/unit/*.h fuzz/*.c

clean:
	rm -rf $(BUILD) build-asan build-fuzz
