#!/usr/bin/env bash
# docs/tapos-at-scale.md end to end, every command in its CPU form, on synthetic sources.
#
# The page's commands run here as written, with these substitutions (a CPU machine, no network):
#   - the annotation file is `tapos-data synth --sources`'s (40 instances, 3 per source video), and
#     the "YouTube" that fetch-videos downloads from is a local HTTP server on 127.0.0.1
#     (--url-template, as tests/test_fetch_videos.py does);
#   - extraction: --device cpu, no --precision, --weights random (no download), --flow dis instead
#     of tvl1-torch (TV-L1 runs at about 1 pair/s on a CPU core), --stride 6;
#   - torchrun: gloo on the CPU, 2 processes on one "node", then 2 "nodes" of 1 process each
#     (two launchers on this machine with --nnodes 2 --node-rank 0/1), each on the val split;
#   - the TSN from frames: --modality rgb, one epoch, 2 segments, random weights.
# It checks that the cache size benchmarks/cache_size.py computes from the annotation file is
# the size of the cache extracted (within 2%), that the torchrun caches hold the same val
# instances as the one-process cache, and writes the seconds each step took to OUT/recipe_check.md.
#
# Usage: bash benchmarks/recipe_check.sh [WORKDIR [OUT]]
#   WORKDIR: where it runs (default /tmp/tapos_recipe; removed first); OUT: default benchmarks/results
# Needs the `test` or `fetch` extra (yt-dlp); PYTHON_BIN: the folder of python, tapos-* and torchrun
# (default: .venv/bin of this checkout).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-/tmp/tapos_recipe}
out=$(mkdir -p "${2:-$repo/benchmarks/results}" && cd "${2:-$repo/benchmarks/results}" && pwd)
command="bash benchmarks/recipe_check.sh $*"
started="$(date +%s) $(cut -d' ' -f1 /proc/loadavg)"
export PATH="${PYTHON_BIN:-$repo/.venv/bin}:$PATH"
export OMP_NUM_THREADS=1  # torchrun's processes share 2 cores
METHODS="transparser kmeans isba ctm tcn pa tsm kcpd embed prior"
S=6  # extraction stride

rm -rf "$work"
mkdir -p "$work"
cd "$work"
timings=()
step() {  # step NAME COMMAND...: run it, echo it first, keep its seconds
  local name=$1 t0=$SECONDS
  shift
  echo "+ $*"
  "$@"
  timings+=("$(printf '%5d s  %s' $((SECONDS - t0)) "$name")")
}
free_port() { python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# 1. The annotation file (here a synthetic one, and its source videos behind a local server)
step "synthetic annotation file and sources" \
  tapos-data synth synth --instances 40 --classes 4 --seed 1 --sources --set first_shot_max=5
cp synth/tapos_annotation.json tapos_annotation.json
port=$(free_port)
python -m http.server "$port" --bind 127.0.0.1 --directory synth/sources > server.log 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
python -c "import time, urllib.request
for _ in range(50):
    try: urllib.request.urlopen('http://127.0.0.1:$port/'); break
    except OSError: time.sleep(0.2)"
step "validate" tapos-data validate tapos_annotation.json
step "stats" tapos-data stats tapos_annotation.json --out stats

# 2. Source videos
step "fetch-videos" tapos-data fetch-videos tapos_annotation.json youtube/ --jobs 4 \
  --url-template "http://127.0.0.1:$port/{id}.mp4"
step "fetch-videos again (resumes: nothing to download)" tapos-data fetch-videos tapos_annotation.json youtube/ \
  --jobs 4 --url-template "http://127.0.0.1:$port/{id}.mp4"
step "check-videos" tapos-data check-videos tapos_annotation.json youtube/ --json check.json --strict

# 3. Features: one process, torchrun on one node, torchrun on two nodes; merge
extract_opts=(--annotations tapos_annotation.json --modality rgb,flow --flow dis --stride $S --weights random
              --device cpu --no-progress)
step "extract (one process)" tapos-extract youtube/ feats.h5 "${extract_opts[@]}"
step "extract (torchrun, 2 processes)" torchrun --nproc-per-node 2 --master-addr 127.0.0.1 \
  --master-port "$(free_port)" -m tapos.extract youtube/ feats_torchrun.h5 "${extract_opts[@]}" --split val
port2=$(free_port)
for rank in 1 0; do  # node 1 waits for node 0 at the rendezvous
  torchrun --nnodes 2 --node-rank $rank --nproc-per-node 1 --master-addr 127.0.0.1 --master-port "$port2" \
    -m tapos.extract youtube/ feats_nodes.h5 "${extract_opts[@]}" --split val > "node$rank.log" 2>&1 &
  nodes[rank]=$!
done
t0=$SECONDS
echo "+ torchrun --nnodes 2 --node-rank 0|1 --nproc-per-node 1 ... -m tapos.extract youtube/ feats_nodes.h5 ..."
wait "${nodes[0]}" && wait "${nodes[1]}" || { cat node0.log node1.log; exit 1; }
cat node0.log
timings+=("$(printf '%5d s  %s' $((SECONDS - t0)) "extract (torchrun, 2 nodes of 1 process)")")
step "merge" tapos-extract merge feats.h5 feats_merged.h5
python - <<'EOF'
import numpy as np
from tapos.data import FeatureReader, load_annotations
val = sorted(k for k, i in load_annotations("tapos_annotation.json").items() if i.subset == "val")
one = FeatureReader("feats.h5")
for name in ("feats_torchrun.h5", "feats_nodes.h5"):  # equal up to float16 rounding (other thread counts)
    other = FeatureReader(name)
    assert sorted(other.keys()) == val, name
    for key in val:
        np.testing.assert_allclose(other.read(key, "rgb+flow"), one.read(key, "rgb+flow"), rtol=2e-2, atol=0.1)
print(f"torchrun caches: the {len(val)} val instances, the features of the one-process cache")
EOF

# Disk: computed from the annotation file, against the cache just extracted
step "cache size" python "$repo/benchmarks/cache_size.py" tapos_annotation.json --stride $S --out .
python - <<EOF
from pathlib import Path
import pandas as pd
computed = pd.read_csv("cache_size.csv").set_index(["stride", "modality", "dtype"]).loc[($S, "rgb+flow", "float16"), "total"]
disk = Path("feats.h5").stat().st_size + sum(p.stat().st_size for p in Path("feats.parts").glob("*.h5"))
print(f"cache size: computed {computed / 1e6:.2f} MB, on disk {disk / 1e6:.2f} MB")
assert abs(computed - disk) <= 0.02 * disk, (computed, disk)
EOF

# 4-5. Every method trained, both protocols on val
step "convert val to the GEBD layout" tapos-data convert tapos_annotation.json gebd_val.json --to gebd --split val
for m in $METHODS; do
  step "train $m" tapos-parse train --method "$m" --features feats.h5 --annotations tapos_annotation.json \
    --out "runs/$m" --device cpu
  step "predict $m" tapos-parse predict --model "runs/$m" --features feats.h5 --annotations tapos_annotation.json \
    --split val --out "pred/$m.json"
  tapos-parse predict --model "runs/$m" --features feats.h5 --annotations tapos_annotation.json --split val \
    --format seconds --out "pred/${m}_seconds.json"
  step "evaluate $m (TAPOS)" tapos-evaluate tapos tapos_annotation.json "pred/$m.json" --split val \
    --json "eval/$m.tapos.json"
  step "evaluate $m (GEBD)" tapos-evaluate gebd gebd_val.json "pred/${m}_seconds.json" \
    --prior-from tapos_annotation.json --json "eval/$m.gebd.json"
done

# 6. TSN: Table 1 (uniform, aligned) and Table 4 (parsed by each method), on features; from frames
tsn=(--features feats.h5 --annotations tapos_annotation.json --segments 3 --device cpu --no-progress)
step "tsn uniform" tapos-tsn "${tsn[@]}" --sampling uniform --out tsn/uniform
step "tsn aligned" tapos-tsn "${tsn[@]}" --sampling aligned --out tsn/aligned
for m in $METHODS; do
  tapos-parse predict --model "runs/$m" --features feats.h5 --annotations tapos_annotation.json --split all \
    --out "parsed/$m.json"
  step "tsn parsed ($m)" tapos-tsn "${tsn[@]}" --sampling parsed --boundaries "parsed/$m.json" \
    --label "parsed ($m)" --out "tsn/parsed_$m"
done
step "tsn table" tapos-tsn table tsn/uniform tsn/aligned $(for m in $METHODS; do echo "tsn/parsed_$m"; done) \
  --out tsn_table.md
step "tsn from frames (torchrun, 2 processes)" torchrun --nproc-per-node 2 --master-addr 127.0.0.1 \
  --master-port "$(free_port)" -m tapos.tsn --input frames --videos youtube/ --annotations tapos_annotation.json \
  --sampling parsed --boundaries parsed/transparser.json --modality rgb --device cpu --out tsn_frames/parsed \
  --segments 2 --epochs 1 --set test_segments=2 --set batch_size=2 --set workers=0 --set 'weights="random"' \
  --no-progress

printf '%s\n' "${timings[@]}" > timings.txt
python - "$repo/benchmarks" "$out" "$command" $started <<'EOF'
import sys
from argparse import Namespace
from pathlib import Path

sys.path.insert(0, sys.argv[1])
import harness  # noqa: E402

out, command, start, load = Path(sys.argv[2]), sys.argv[3].strip(), float(sys.argv[4]), float(sys.argv[5])
rows = [line.split(" s  ", 1) for line in Path("timings.txt").read_text().splitlines()]
text = "\n".join(["# The TAPOS-at-scale recipe on synthetic sources, in its CPU form", "",
                  "Every command of docs/tapos-at-scale.md as `benchmarks/recipe_check.sh` runs it (the substitutions "
                  "are listed in the script's header), with the seconds each step took:", "",
                  "| step | seconds |", "|---|---|", *(f"| {name} | {sec.strip()} |" for sec, name in rows), "",
                  f"In all: {sum(int(sec) for sec, _ in rows) / 60:.1f} min."])
harness.write_report(Namespace(out=out, command=command, started=(start, load)), "recipe_check.md", text)
print(text)
EOF
echo "recipe_check: every step ran ($work); the timings are in $out/recipe_check.md"
