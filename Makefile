# detbench: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
# `make setup` (and `make demo`): detbench with the CPU backends (ONNX Runtime, OpenVINO) and pandas (the API's to_pandas)
STAMP := $(VENV)/.detbench-installed
# `make test` adds the test tools and Ray (the sweep tests run a local Ray cluster)
DEV_STAMP := $(VENV)/.detbench-dev-installed
# Most tests wait on a child process using one core: two pytest workers, each kept to its own cores
# (tests/conftest.py), keep both cores busy.
TEST_WORKERS ?= 2

.PHONY: setup setup-dev setup-browser demo test unit lint clean

setup: $(STAMP)

setup-dev: $(DEV_STAMP)

# pip compiles every installed file on one core (most of torch is never imported); compileall uses every core.
# A file that does not compile (a package's Python 2 test data) is only never imported: its error is not fatal.
PIP_INSTALL := $(PY) -m pip install -q --no-compile
COMPILE := $(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP_INSTALL) $(TORCH_PINS) -e '.[onnx,openvino,api]'
	$(COMPILE)
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP_INSTALL) $(TORCH_PINS) -e '.[dev,onnx,openvino,api,ray]'
	$(COMPILE)
	touch $(DEV_STAMP)

# the browser test of report.html (tests/e2e/test_report_page_browser.py): Debian's Chromium and Playwright (Playwright's
# own browser download is not used); without them `make test` skips that one test and names this target
setup-browser: $(DEV_STAMP)
	command -v chromium >/dev/null || apt-get install -y chromium || sudo apt-get install -y chromium
	$(PIP_INSTALL) $(TORCH_PINS) -e '.[dev,onnx,openvino,api,ray,browser]'

demo: $(STAMP)
	$(VENV)/bin/detbench demo

test: $(DEV_STAMP)
	$(PY) -m ruff check src scripts tests benchmarks
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=12

# the unit tier alone: tests/unit, in process (the same tests as `pytest -m "not slow"`), two pytest workers
unit: $(DEV_STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) tests/unit

lint: $(DEV_STAMP)
	$(PY) -m ruff check src scripts tests benchmarks

clean:
	rm -rf demo .pytest_cache build *.egg-info src/*.egg-info
