# The two commands of the README. Each sets itself up on a fresh machine:
# a virtual environment in .venv, tfqnn installed editable with its extras,
# and Debian's Fashion-MNIST when apt-get can install it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tfqnn-installed
KERNEL_SOURCES := $(shell find tfqnn/lite/kernels -name '*.cc' -o -name '*.h')
CXX_FILES := $(KERNEL_SOURCES) $(shell find tests/lite/native -name '*.cc' -o -name '*.h')

.PHONY: demo test test-fast check format data clean docs

# The editable install also builds the C++ kernel library (setup.py) into
# tfqnn/lite/libtfqnn_ops.so; a change to the kernels rebuilds it.
$(STAMP): pyproject.toml setup.py $(KERNEL_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77"
	$(PY) -m pip install --quiet -e ".[cpu,data,test,lite,dev]"
	touch $(STAMP)

data:
	@scripts/install_fashion_mnist.sh

demo: $(STAMP) data
	$(PY) examples/binarized_fashion_mnist.py

# The static checks: formatting (ruff, clang-format), lint, types, and the
# import contracts of docs/architecture.md.
check: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/clang-format --dry-run -Werror $(CXX_FILES)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# Rewrites the Python and C++ files in the house style.
format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/clang-format -i $(CXX_FILES)

test: $(STAMP) data check
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

# The documentation site (mkdocs.yml) into site/: the pictures first
# (scripts/docs_images.py), then mkdocs --strict (a broken link, a missing
# page or an undocumented public name fails).
DOCS_STAMP := $(VENV)/.tfqnn-docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) scripts/docs_images.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) build dist *.egg-info site
