# Two entry points (see README): `make run` and `make test`. Both create .venv once;
# the install is redone only when requirements.txt changes (stamp file), so torch is
# never reinstalled on a second run.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum requirements.txt | cut -d' ' -f1)
PORT   ?= 8501
ARGS   ?=

.PHONY: run test test-fast bench bench-train bench-data bench-gpu venv clean

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: venv
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

# On a CUDA machine with its own python3 + torch (no venv needed).
bench-gpu:
	PYTHONPATH=. python3 bench/train_gpu.py
	PYTHONPATH=. python3 bench/memory_gpu.py

clean:
	rm -rf $(VENV)
