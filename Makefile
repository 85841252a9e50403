# Two entry points for a fresh machine (see README.md):
#   make demo   -> install, then run the whole pipeline on the built-in synthetic dataset
#   make test   -> install, then run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= demo
# torch is installed first and pinned: on the project's CPU machines this is a local CPU wheel;
# elsewhere pip fetches the matching build for your platform. Override to pick your own build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.tapos-installed

.PHONY: install demo test clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

install: $(STAMP)

demo: install
	$(BIN)/tapos-data synth $(DEMO) --videos --features
	$(BIN)/tapos-data stats $(DEMO)/tapos_annotation.json --out $(DEMO)/stats
	$(BIN)/tapos-data convert $(DEMO)/tapos_annotation.json $(DEMO)/gebd_val.json --to gebd --split val
	$(BIN)/tapos-data uniform-boundaries $(DEMO)/tapos_annotation.json --split val --segments 4 --out $(DEMO)/pred_uniform_frames.json
	$(BIN)/tapos-data uniform-boundaries $(DEMO)/tapos_annotation.json --split val --segments 4 --seconds --out $(DEMO)/pred_uniform_seconds.json
	$(BIN)/tapos-evaluate tapos $(DEMO)/tapos_annotation.json $(DEMO)/pred_uniform_frames.json --split val --json $(DEMO)/eval_tapos.json --plot $(DEMO)/eval_tapos.png
	$(BIN)/tapos-evaluate gebd $(DEMO)/gebd_val.json $(DEMO)/pred_uniform_seconds.json --json $(DEMO)/eval_gebd.json --plot $(DEMO)/eval_gebd.png
	$(BIN)/tapos-evaluate human $(DEMO)/gebd_annotators.json --json $(DEMO)/eval_human.json
	$(BIN)/tapos-parse train --method transparser --features $(DEMO)/features.h5 --annotations $(DEMO)/tapos_annotation.json --out $(DEMO)/transparser --epochs 15
	$(BIN)/tapos-parse predict --model $(DEMO)/transparser --features $(DEMO)/features.h5 --annotations $(DEMO)/tapos_annotation.json --split val --out $(DEMO)/pred_transparser.json
	$(BIN)/tapos-evaluate tapos $(DEMO)/tapos_annotation.json $(DEMO)/pred_transparser.json --split val --json $(DEMO)/eval_transparser.json --plot $(DEMO)/eval_transparser.png

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(DEMO) build dist *.egg-info
