# The two commands of the README. Each sets itself up on a fresh machine:
# a virtual environment in .venv, tfqnn installed editable with its extras,
# and Debian's Fashion-MNIST when apt-get can install it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tfqnn-installed
KERNEL_SOURCES := $(shell find tfqnn/lite/kernels -name '*.cc' -o -name '*.h')

.PHONY: demo test test-fast data clean

# The editable install also builds the C++ kernel library (setup.py) into
# tfqnn/lite/libtfqnn_ops.so; a change to the kernels rebuilds it.
$(STAMP): setup.cfg pyproject.toml setup.py $(KERNEL_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[cpu,data,test,lite]"
	touch $(STAMP)

data:
	@scripts/install_fashion_mnist.sh

demo: $(STAMP) data
	$(PY) examples/binarized_fashion_mnist.py

test: $(STAMP) data
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) build *.egg-info
