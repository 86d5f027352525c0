"""`dvc repro` runs the stages in order and skips those whose inputs did not change."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dvc_project(tmp_path_factory, synthetic_dataset):
    dvc = Path(sys.executable).parent / "dvc"
    if not dvc.exists():
        pytest.skip("dvc is not installed in this environment (requirements-dev.txt)")
    project = tmp_path_factory.mktemp("dvc")
    shutil.copytree(ROOT / "mlcore", project / "mlcore", ignore=shutil.ignore_patterns("tests", "__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", project / "dvc.yaml")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update({"image_size": 32, "epochs": 1, "batch_size": 16, "normalization": "batch"})
    params["train"]["split"].update({"val_fraction": 0.25, "test_fraction": 0.25})
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    (project / "config.yaml").write_text(yaml.safe_dump({
        "data_dir": str(synthetic_dataset), "artifacts_dir": "artifacts", "model_out": "models/m.keras",
        "extra_manifests": []}))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "MLCORE_TRACKING": "0", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(project)}
    env.pop("KIDNEY_DATA_DIR", None)
    run = lambda *args: subprocess.run([str(dvc), *args], cwd=project, env=env, capture_output=True,  # noqa: E731
                                       text=True, timeout=600)
    init = run("init", "--no-scm", "-q")
    assert init.returncode == 0, init.stderr
    return project, run


def test_dvc_repro_runs_every_stage_then_skips_them_when_nothing_changed(dvc_project):
    project, run = dvc_project
    first = run("repro")
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in ("ingest", "prepare_base_model", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first.stdout
    assert (project / "artifacts/evaluate/scores.json").exists()
    assert (project / "artifacts/train/model.json").exists()

    second = run("repro")
    assert second.returncode == 0, second.stderr
    assert "Running stage" not in second.stdout

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["evaluate"]["confidence_threshold"] = 0.8
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    third = run("repro")
    assert third.returncode == 0, third.stderr
    assert "Running stage 'evaluate'" in third.stdout and "Running stage 'train'" not in third.stdout
