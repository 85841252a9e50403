# Two entry points for a fresh machine (see README.md):
#   make demo   -> install, then run the whole pipeline on the built-in synthetic dataset
#   make test   -> install, then run the test suite (one worker per core; a module's tests share a worker)
# and two for the documentation:
#   make docs   -> build the documentation site into site/ (strict: a broken link fails it)
#   make readme -> copy README's headline table again from its results file
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= demo
# torch is installed first and pinned: on the project's CPU machines this is a local CPU wheel;
# elsewhere pip fetches the matching build for your platform. Override to pick your own build.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.tapos-installed

.PHONY: install demo test docs readme clean

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
	$(BIN)/tapos-evaluate gebd $(DEMO)/gebd_val.json $(DEMO)/pred_uniform_seconds.json --prior-from $(DEMO)/tapos_annotation.json --json $(DEMO)/eval_gebd.json --plot $(DEMO)/eval_gebd.png
	$(BIN)/tapos-evaluate human $(DEMO)/gebd_annotators.json --json $(DEMO)/eval_human.json
	$(BIN)/tapos-parse train --method transparser --features $(DEMO)/features.h5 --annotations $(DEMO)/tapos_annotation.json --out $(DEMO)/transparser --epochs 10
	$(BIN)/tapos-parse predict --model $(DEMO)/transparser --features $(DEMO)/features.h5 --annotations $(DEMO)/tapos_annotation.json --split val --out $(DEMO)/pred_transparser.json
	$(BIN)/tapos-evaluate tapos $(DEMO)/tapos_annotation.json $(DEMO)/pred_transparser.json --split val --json $(DEMO)/eval_transparser.json --plot $(DEMO)/eval_transparser.png
	# what TransParser's patterns say about the actions (report with thumbnails from the videos; the
	# synthetic truth measures how many planted shared sub-actions come out as shared patterns)
	$(BIN)/tapos-parse analyze --model $(DEMO)/transparser --features $(DEMO)/features.h5 --annotations $(DEMO)/tapos_annotation.json --videos $(DEMO)/videos --truth $(DEMO)/synth_truth.json --out $(DEMO)/report
	$(BIN)/tapos-parse show --model $(DEMO)/transparser --features $(DEMO)/features.h5 --annotations $(DEMO)/tapos_annotation.json --videos $(DEMO)/videos --out $(DEMO)/timeline.png
	# stage one from videos: a smaller synthetic set rendered as source videos, TAPOS instances cut out of
	# them, BNInception (seeded random weights: no download) RGB and DIS flow at 3 rows/s; then a parser
	# trained on those features and evaluated on val
	$(BIN)/tapos-data synth $(DEMO)/small --instances 20 --classes 4 --seed 1 --sources --set first_shot_max=5
	$(BIN)/tapos-extract $(DEMO)/small/sources $(DEMO)/small/extracted.h5 --annotations $(DEMO)/small/tapos_annotation.json --weights random --modality rgb,flow --flow dis --fps 3
	$(BIN)/tapos-parse train --method kmeans --features $(DEMO)/small/extracted.h5 --annotations $(DEMO)/small/tapos_annotation.json --out $(DEMO)/small/kmeans
	$(BIN)/tapos-parse predict --model $(DEMO)/small/kmeans --features $(DEMO)/small/extracted.h5 --annotations $(DEMO)/small/tapos_annotation.json --split val --out $(DEMO)/small/pred_kmeans.json
	$(BIN)/tapos-evaluate tapos $(DEMO)/small/tapos_annotation.json $(DEMO)/small/pred_kmeans.json --split val --json $(DEMO)/small/eval_kmeans.json
	# a video of your own (the smallest source video): features extracted like the model's training cache, parsed, drawn
	$(BIN)/tapos-parse video $$(ls -Sr $(DEMO)/small/sources/*.mp4 | head -n 1) --model $(DEMO)/small/kmeans --out $(DEMO)/small/my_video
	# action classification with a TSN whose snippets follow the sub-actions, on data that carries what the
	# paper's finding rests on (--preset signature: classes alike but for a brief sub-action of their own;
	# see docs/tsn.md): even segments, annotated sub-actions, and the sub-actions that kcpd (label-free, no
	# training: fast) parses in every instance (train and val); benchmarks/tsn_table.py holds every parser
	# over 5 seeds, TransParser included
	$(BIN)/tapos-data synth $(DEMO)/tsn --features --preset signature --seed 11
	$(BIN)/tapos-parse train --method kcpd --features $(DEMO)/tsn/features.h5 --annotations $(DEMO)/tsn/tapos_annotation.json --out $(DEMO)/tsn/kcpd
	$(BIN)/tapos-parse predict --model $(DEMO)/tsn/kcpd --features $(DEMO)/tsn/features.h5 --annotations $(DEMO)/tsn/tapos_annotation.json --split all --out $(DEMO)/tsn/parsed_kcpd.json
	$(BIN)/tapos-tsn --features $(DEMO)/tsn/features.h5 --annotations $(DEMO)/tsn/tapos_annotation.json --sampling uniform --segments 3 --epochs 10 --out $(DEMO)/tsn/uniform
	$(BIN)/tapos-tsn --features $(DEMO)/tsn/features.h5 --annotations $(DEMO)/tsn/tapos_annotation.json --sampling aligned --segments 3 --epochs 10 --out $(DEMO)/tsn/aligned
	$(BIN)/tapos-tsn --features $(DEMO)/tsn/features.h5 --annotations $(DEMO)/tsn/tapos_annotation.json --sampling parsed --boundaries $(DEMO)/tsn/parsed_kcpd.json --label "parsed (kcpd)" --segments 3 --epochs 10 --out $(DEMO)/tsn/parsed
	$(BIN)/tapos-tsn table $(DEMO)/tsn/uniform $(DEMO)/tsn/aligned $(DEMO)/tsn/parsed --out $(DEMO)/tsn_table.md
	# what was written where, and the headline numbers next to chance (also in $(DEMO)/summary.md)
	$(BIN)/python benchmarks/demo_summary.py $(DEMO)

# An independent BNInception (pretrainedmodels 0.7.4, BSD; its file imports only torch) that the
# tests compare ours with on the same weights. Without network its parity test is skipped.
REFERENCE := $(VENV)/reference/pretrainedmodels-0.7.4/pretrainedmodels/models/bninception.py

$(REFERENCE):
	mkdir -p $(VENV)/reference
	( $(BIN)/pip download -q --no-deps --no-binary :all: pretrainedmodels==0.7.4 -d $(VENV)/reference \
	  && tar -xzf $(VENV)/reference/pretrainedmodels-0.7.4.tar.gz -C $(VENV)/reference ) \
	  || echo "reference BNInception not downloaded: its parity test will be skipped"

test: install $(REFERENCE)
	TAPOS_REFERENCE_BNINCEPTION=$(abspath $(REFERENCE)) $(BIN)/python -m pytest -n auto --dist loadscope

# NO_MKDOCS_2_WARNING: mkdocs-material prints a notice about MkDocs 2 on every build; it is not
# about this site.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

readme: install
	$(BIN)/python benchmarks/splice_readme.py

clean:
	rm -rf $(VENV) $(DEMO) build dist site *.egg-info
