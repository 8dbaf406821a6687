# livelab: `make demo` boots the stand-in as fcos/flatcar and checks it; `make test` runs the tests.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
PYTEST_CI ?= -m "not slow"

.PHONY: all host venv images demo test test-unit test-e2e bench clean

all: test

$(STAMPS)/host: scripts/setup-host.sh
	@mkdir -p $(STAMPS)
	./scripts/setup-host.sh
	@touch $@

$(STAMPS)/venv: pyproject.toml $(STAMPS)/host
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip >/dev/null
	$(BIN)/pip install -q -e '.[libvirt]' pytest-timeout
	@touch $@

host: $(STAMPS)/host
venv: $(STAMPS)/venv

# the stand-in live OS and its mirror (rebuilt only when the recipe changes)
images: $(STAMPS)/venv
	$(BIN)/python images/build.py

# the stand-in, served as fcos/flatcar from its local mirror, trusted through its build key
STANDIN := --mirror images/out/mirror --keyring images/out/keyring.gpg --ignition-spec-table images/out/ignition-specs.json

demo: images
	$(BIN)/livelab check fcos --stream stable --via pxe $(STANDIN)
	$(BIN)/livelab check flatcar --channel beta --via ipxe $(STANDIN)
	$(BIN)/livelab check fcos --stream next --via iso-fromram --firmware uefi $(STANDIN)

test-unit: $(STAMPS)/venv
	$(BIN)/pytest tests/unit -q

# the tests use an artifact cache of their own checkout (a fresh clone starts cold, as CI does)
TEST_ENV := LIVELAB_CACHE_DIR=$(CURDIR)/runs/artifact-cache

test: images
	$(BIN)/pytest tests/unit -q -p no:cacheprovider
	./scripts/setup-libvirt.sh
	$(TEST_ENV) $(BIN)/pytest tests/e2e -m ci -v -p no:cacheprovider --junitxml=runs/junit-ci.xml $(PYTEST_ARGS)

test-e2e: images
	./scripts/setup-libvirt.sh
	$(TEST_ENV) $(BIN)/pytest tests -v -n 2 --vm-cpus 1 --junitxml=runs/junit-e2e.xml $(PYTEST_ARGS)

bench: images
	$(BIN)/python bench/run.py

clean:
	rm -rf runs $(STAMPS) images/out
