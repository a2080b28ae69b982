# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

LOCK   := requirements.lock
EXTRAS := test,bench,train,openvino,ray

.PHONY: setup demo test test-all lint docs bench bench-scale bench-downstream chromium tmux clean lock lock-moto

# Every version comes from requirements.lock, so each fresh machine installs the same ones.
# CPU torch first: with torch==2.13.0 already installed, sentence-transformers pulls no CUDA build.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q -c $(LOCK) pip
	$(PIP) install -q -c $(LOCK) torch==2.13.0
	$(PIP) install -q -c $(LOCK) -e '.[$(EXTRAS)]'
	touch $(STAMP)

# Refresh the lock: resolve pyproject.toml's ranges afresh in a throwaway venv and freeze the result.
lock:
	rm -rf .lock-venv && python3 -m venv .lock-venv
	.lock-venv/bin/pip install -q --upgrade pip
	.lock-venv/bin/pip install -q torch==2.13.0
	.lock-venv/bin/pip install -q -e '.[$(EXTRAS)]'
	{ echo "# Every package and version a fresh venv gets (make setup). Refresh with: make lock"; \
	  .lock-venv/bin/pip freeze --all --exclude-editable; } > $(LOCK)
	rm -rf .lock-venv

# moto's S3 server for the object-storage tests, in a venv of its own: moto needs botocore, which needs
# python-dateutil<3, where requirements.lock pins 4.0.0 (tests/test_object_storage.py starts it on loopback).
MOTO_VENV  := .moto-venv
MOTO_LOCK  := requirements-moto.lock
MOTO_STAMP := $(MOTO_VENV)/.installed
$(MOTO_STAMP): $(MOTO_LOCK)
	test -x $(MOTO_VENV)/bin/python || python3 -m venv $(MOTO_VENV)
	$(MOTO_VENV)/bin/pip install -q -r $(MOTO_LOCK)
	touch $(MOTO_STAMP)

lock-moto:
	rm -rf .lock-moto && python3 -m venv .lock-moto
	.lock-moto/bin/pip install -q 'moto[server]==5.2.6'
	{ head -2 $(MOTO_LOCK); .lock-moto/bin/pip freeze --exclude-editable; } > $(MOTO_LOCK).new && mv $(MOTO_LOCK).new $(MOTO_LOCK)
	rm -rf .lock-moto

setup: $(STAMP) $(MOTO_STAMP)

demo: setup
	$(VENV)/bin/hnmine mine sample_data --out runs/demo
	$(VENV)/bin/hnmine report runs/demo --top 5

# Headless Chromium for the HTML report test (Debian package; skipped quietly where apt is unavailable).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "chromium not installed: the HTML rendering test will be skipped"

# tmux for the test that drives `hnmine review` in a real terminal (skipped where tmux is missing).
tmux:
	@command -v tmux >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq tmux >/dev/null) || echo "tmux not installed: the terminal test of hnmine review will be skipped"

test: setup chromium tmux
	$(PY) -m pytest -q -m "not slow"

test-all: setup chromium tmux
	$(PY) -m pytest -q

# Lint, format and type checks (run by .ci/run before the tests).
lint: setup
	$(VENV)/bin/ruff check hnmine tests benchmarks
	$(VENV)/bin/ruff format --check hnmine tests benchmarks
	$(VENV)/bin/mypy

# The CLI reference is generated from the commands' own help (tests/test_docs.py checks it).
docs: setup
	$(PY) -m hnmine.clidoc > docs/cli.md

bench: setup
	$(PY) benchmarks/bench_scifact.py --backend openvino
	$(PY) benchmarks/bench_backend_quality.py --backend openvino
	$(PY) benchmarks/bench_cross_encoder.py
	$(PY) benchmarks/bench_ray.py
	$(PY) benchmarks/bench_store.py

bench-scale: setup
	$(PY) benchmarks/bench_scale.py
	$(PY) benchmarks/bench_scale.py --engine ray

# Fine-tune on each method's SciFact train export, measure on SciFact test, 3 seeds; then the dense-label grid
# (Cranfield halves and SciFact train with hidden positives, 5 seeds). Hours on 2 CPU cores; resumable.
bench-downstream: setup
	$(PY) benchmarks/bench_calibration.py
	$(PY) benchmarks/bench_relabel.py
	$(PY) benchmarks/bench_downstream.py
	$(PY) benchmarks/bench_downstream_dense.py

clean:
	rm -rf runs .pytest_cache .hypothesis
