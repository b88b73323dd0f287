# Two entry points (see README): `make run` and `make test`. Both create .venv once;
# the install is redone only when requirements.txt changes (stamp file), so torch is
# never reinstalled on a second run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
PORT   ?= 8501
ARGS   ?=

.PHONY: run test test-fast test-core bench bench-train bench-data bench-gpu venv clean

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: venv
	$(PY) -m nin_explorer teacher-link --port $(PORT)
	$(PY) -m streamlit run app.py --server.port $(PORT) $(ARGS)

test: venv
	$(PY) -m pytest

test-fast: venv
	$(PY) -m pytest -m "not e2e and not slow"

bench: venv
	$(PY) bench/summary_speed.py

bench-train: venv
	$(PY) bench/train_cpu.py

bench-data: venv
	$(PY) bench/data_shapes.py --nin

# On a CUDA machine with its own python3 + torch + torchvision (no venv, streamlit or plotly).
bench-gpu:
	PYTHONPATH=. python3 bench/train_gpu.py --all --json gpu.json
	PYTHONPATH=. python3 bench/memory_gpu.py
	PYTHONPATH=. python3 bench/runs_at_once.py --at-once 1,2,4 --runs 8 --examples 60000

# The core's tests with that machine's python3 (they need pytest, not pytest-timeout); the
# CUDA tests in them run there instead of being skipped.
CORE_TESTS = tests/test_train.py tests/test_summary.py tests/test_spec.py tests/test_data.py \
	tests/test_distributed.py tests/test_maps.py tests/test_ablation.py tests/test_store.py \
	tests/test_worker.py tests/test_cli_train.py tests/test_cli.py tests/test_bench.py
CORE_TESTS += tests/test_catalogue.py tests/test_shapes.py tests/test_folders.py tests/test_downloads.py \
	tests/test_places.py
CORE_TESTS += tests/test_config.py tests/test_loop.py tests/test_device_data.py tests/test_checkpoint.py \
	tests/test_procs.py tests/test_jobs.py tests/test_roles.py tests/test_images.py tests/test_build.py \
	tests/test_plan.py tests/test_compat.py tests/test_queries.py
CORE_TESTS += tests/test_probe.py tests/test_noise.py tests/test_folder_facts.py tests/test_zip_import.py \
	tests/test_cli_data.py tests/test_folder_training.py tests/test_final_relu.py
test-core:
	PYTHONPATH=. python3 -m pytest -o addopts=-ra $(CORE_TESTS)

clean:
	rm -rf $(VENV)
