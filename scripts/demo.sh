#!/usr/bin/env bash
# The main job on the embedded default: set up .venv, then serve the shipped checkpoints (models/default) on a
# local Ray cluster at http://127.0.0.1:8000 (web page at /, API docs at /docs). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The built-in pose estimator (setup.sh builds it when it can): requests then need only the two photos.
if [ -x .pose-venv/bin/python ]; then
  export KGI_POSE_PYTHON="$PWD/.pose-venv/bin/python"
fi
exec .venv/bin/kgi serve "$@"
