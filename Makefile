# Two entry points that set everything up on a fresh machine:
#   make build   create .venv, install archdsl, build a shipped spec
#   make test    create .venv, install archdsl and test tools, run the test suite
#   make test-all  the suite and its slow tests (training runs, long fuzzing)
#   make lint  ruff over the whole tree (rules in pyproject.toml)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SPEC   ?= specs/resnet18.arch

.PHONY: build test test-all lint bench diagrams setup clean

$(BIN)/archdsl: pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	$(BIN)/pip install -q -e .
	touch $@

setup: $(BIN)/archdsl

build: setup
	$(BIN)/archdsl build $(SPEC)

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m ''

lint: setup
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python bench/check_speed.py
	$(BIN)/python bench/render_speed.py
	$(BIN)/python bench/torch_speed.py

diagrams: setup
	$(BIN)/archdsl render specs/vgg16.arch -o docs/images/vgg16.svg
	$(BIN)/archdsl render specs/resnet50.arch -o docs/images/resnet50.svg
	$(BIN)/archdsl render specs/googlenet.arch -o docs/images/googlenet.svg
	$(BIN)/archdsl render specs/unet.arch -o docs/images/unet.svg
	$(BIN)/archdsl render specs/llama.arch -o docs/images/llama.svg
	$(BIN)/archdsl render specs/llama.arch --set num_hidden_layers=1 --expand llama_layer \
		-o docs/images/llama_layer.svg
	$(BIN)/archdsl render specs/ddpm_unet.arch -o docs/images/ddpm_unet.svg
	$(BIN)/archdsl render specs/vgg19.arch specs/plain34.arch specs/resnet34.arch \
		--expand all --show stacks --no-shapes --merges plain --no-frames --caption vgg19=VGG-19 \
		--caption "resnet34=34-layer residual" -o docs/images/resnet_figure3.svg
	$(BIN)/archdsl stats specs/alexnet.arch specs/vgg16.arch \
		--plot docs/images/alexnet_vgg16_costs.svg > /dev/null

clean:
	rm -rf $(VENV) build
