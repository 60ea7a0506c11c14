#!/usr/bin/env bash
# The main job on the embedded default: set up .venv, then serve the shipped checkpoints (models/default) on a
# local Ray cluster at http://127.0.0.1:8000 (web page at /, API docs at /docs). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/kgi serve "$@"
