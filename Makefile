# One virtual environment in .venv; every target creates it on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
# CPU build of torch by default (no multi-GB CUDA download). On a GPU machine:
#   make venv TORCH_SPEC="torch" (or install your CUDA torch into .venv first).
TORCH_SPEC ?= torch==2.13.0

.PHONY: venv demo test test-fast docs bench bench-gpu clean

$(BIN)/mem2gen: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test,bench]"
	$(BIN)/pip install -q --no-deps "lpips>=0.1.4"
	touch $(BIN)/mem2gen

venv: $(BIN)/mem2gen

demo: venv
	$(BIN)/mem2gen sweep --preset quick --out runs/quick

test: venv
	$(BIN)/pytest

test-fast: venv  # all but the slow tests (under a minute)
	$(BIN)/pytest -m "not slow"

bench: venv
	$(BIN)/python benchmarks/bench_neighbors.py
	$(BIN)/python benchmarks/bench_lpips.py
	$(BIN)/python benchmarks/bench_memory.py
	$(BIN)/python benchmarks/bench_int8.py
	$(BIN)/python benchmarks/bench_threads.py

bench-gpu: venv  # on a CUDA machine (install a CUDA torch into .venv first)
	$(BIN)/python benchmarks/bench_gpu.py benchmarks/last_gpu.json

clean:
	rm -rf $(VENV) runs

docs: venv  # pages rendered from docs/templates and docs/tables, then the site (offline, strict) in site/
	$(BIN)/python scripts/render_docs.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build
