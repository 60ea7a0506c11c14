#!/usr/bin/env bash
# Rebuild the shipped checkpoints (models/default) from nothing, on the local Ray cluster:
# synthetic data -> Parquet shards -> three Ray Train runs -> exported version -> evaluation reports.
# Storage defaults to local folders; set DATA=s3://bucket/prefix RUNS=s3://bucket/runs (and AWS_ENDPOINT_URL for
# a non-AWS endpoint) to keep shards and checkpoints on S3 instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PAIRS=${PAIRS:-4000}
SYNTH=${SYNTH:-data/synth}
DATA=${DATA:-data/shards}
RUNS=${RUNS:-runs}
KGI=.venv/bin/kgi

[ -f "$SYNTH/train_pairs.txt" ] || $KGI synth "$SYNTH" --pairs "$PAIRS" --test-pairs $((PAIRS / 10)) --height 256 --seed 0
$KGI convert "$SYNTH" --out "$DATA" --shard-size 256
for model in keypoints parse inpainter; do
  $KGI train "$model" --config "training/configs/$model.yaml" --data "$DATA" --storage "$RUNS"
done
$KGI export "$RUNS/keypoints" "$RUNS/parse" "$RUNS/inpainter" --version default --base none
$KGI eval stages "$SYNTH" --split test --out reports/stages
$KGI eval tryon "$SYNTH" --split test --mode paired --limit 64 --out reports/tryon
