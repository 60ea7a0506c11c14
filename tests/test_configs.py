"""Every shipped training config loads and means what it says; bad configs fail with a message naming the problem."""

from pathlib import Path

import pytest

from training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted([*REPO.glob("training/configs/*.yaml"), *REPO.glob("platform/train/*.yaml")])


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_training_configs_load(path):
    cfg = TrainConfig.from_yaml(path)
    assert path.stem.startswith(cfg.model)
    assert cfg.use_gpu == ("gpu" in path.stem)


def test_bad_training_configs_are_refused_with_a_reason(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: keypoints\ndata: x\nstep: 10\n")
    with pytest.raises(ValueError, match="unknown option.*step"):
        TrainConfig.from_yaml(path)
    path.write_text("model: parse\ndata: x\nheight: 96\n")
    with pytest.raises(ValueError, match="multiple of"):
        TrainConfig.from_yaml(path)
    path.write_text("model: painter\ndata: x\n")
    with pytest.raises(ValueError, match="model must be one of"):
        TrainConfig.from_yaml(path)


@pytest.mark.parametrize("run_name", ["../escape", "a/b", "..", ".hidden", "", "x" * 200])
def test_run_names_stay_one_folder_under_the_storage_path(run_name):
    with pytest.raises(ValueError, match="run_name must be one folder name"):
        TrainConfig(model="keypoints", data="x", run_name=run_name)
    assert TrainConfig(model="keypoints", data="x", run_name="kp-v2.1").run_name == "kp-v2.1"
