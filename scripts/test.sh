#!/usr/bin/env bash
# Set up a virtual environment in .venv (CPU torch from the local wheel) and run the test suite, every test unless
# arguments say otherwise (the fast tier: scripts/test.sh -m "not slow"), reporting the 25 slowest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  echo "note: Debian's chromium is missing; installing it for the browser test" >&2
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: chromium install failed" >&2
fi
# The built-in pose estimator's environment, when setup.sh could build it (its tests skip otherwise).
if [ -x .pose-venv/bin/python ]; then
  export KGI_POSE_PYTHON="$PWD/.pose-venv/bin/python"
fi
set +e
.venv/bin/python -m pytest --durations=25 "$@"
code=$?
set -e
if [ "$code" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 0
fi
exit "$code"
