#!/usr/bin/env bash
# Create .venv and install kgi-platform with its test extras. CPU torch comes from the local wheel first so
# that no multi-GB CUDA build is pulled in. Safe to rerun: an up-to-date venv installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
