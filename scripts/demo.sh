#!/usr/bin/env bash
# The main job on the default preset: generate data/gan-car if absent, train gansvr with its defaults,
# reconstruct the test split's input images and evaluate them against the ground-truth meshes.
# Environment: DATA (default data/gan-car), EXTRA (more ns-train flags, e.g. "--max-num-iterations 300").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA="${DATA:-data/gan-car}"
RUN="$(date +%Y-%m-%d_%H%M%S)"
NAME="$(basename "$DATA")"

# ns-train generates a missing preset dataset itself; generating first keeps its progress bar readable.
if [ ! -f "$DATA/dataset.json" ]; then
  "$BIN/python" -c "import sys; from pathlib import Path; from gansvr_ns.data.dataparser import ensure_dataset; ensure_dataset(Path(sys.argv[1]))" "$DATA"
fi
# shellcheck disable=SC2086
"$BIN/ns-train" gansvr --data "$DATA" --output-dir outputs --timestamp "$RUN" ${EXTRA:-}
CONFIG="outputs/$NAME/gansvr/$RUN/config.yml"
MESHES="outputs/$NAME/gansvr/$RUN/meshes"
"$BIN/gansvr-reconstruct" --load-config "$CONFIG" --data "$DATA" --split test --output-dir "$MESHES" --format ply glb
"$BIN/gansvr-eval" --pred "$MESHES" --data "$DATA" --split test --baseline
echo
echo "Run config: $CONFIG"
echo "Meshes:     $MESHES/*.ply (and .glb)"
echo "Metrics:    $MESHES/eval_test.json"
