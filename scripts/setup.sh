#!/usr/bin/env bash
# Create .venv and install kgi-platform with its test extras (pytest, hypothesis, schemathesis, moto...:
# pyproject.toml). CPU torch comes from the local wheel first so that no multi-GB CUDA build is pulled in.
# Safe to rerun: an up-to-date venv installs nothing.
# Also builds .pose-venv, the built-in pose estimator's own environment (mediapipe 0.10.14 needs protobuf < 5,
# Ray Serve needs a newer one, so BlazePose runs in a separate process: kgi/pose_estimation.py). It is optional:
# set KGI_SKIP_POSE=1 to skip it; without it, requests must send OpenPose JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
if [ "${KGI_SKIP_POSE:-0}" != 1 ] && [ ! -x .pose-venv/bin/python ]; then
  if ! (python3 -m venv .pose-venv && .pose-venv/bin/python -m pip install -q "mediapipe==0.10.14"); then
    echo "warning: the pose estimator's environment (.pose-venv, mediapipe) could not be built; requests will" \
         "need OpenPose JSON" >&2
    rm -rf .pose-venv
  fi
fi
