"""The avocado-xr command line: demo, fit and impute, each with --help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import avocado_xr as ax
from avocado_xr.cli import main


@pytest.mark.parametrize(
    "command", ["demo", "fit", "impute", "evaluate", "ingest", "export-bigwig"]
)
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: avocado-xr " + command in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"avocado-xr {ax.__version__}"


def test_progress_in_a_log_is_one_line_per_epoch(capsys):
    """Off a terminal (CI, batch jobs) verbose training prints a line per epoch, no redraws."""
    ds = ax.testing.simulate_compendium(n_positions=2_000, seed=0)
    ax.fit(ds, epochs=3, verbose=True, n_layers=1, n_nodes=8, batch_size=100, device="cpu")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[:2] for line in lines] == [["epochs", f"{k}/3"] for k in (1, 2, 3)]
    assert all("\r" not in line and "loss=" in line for line in lines)


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "avocado-xr"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "avocado_xr.cli"]
    out = subprocess.run([*command, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "demo" in out.stdout and "impute" in out.stdout


def test_demo_scores_a_hidden_real_track(tmp_path, capsys):
    code = main(["demo", "--output", str(tmp_path), "--epochs", "3", "--quiet"])
    assert code == 0
    text = capsys.readouterr().out
    assert "Held-out track (E065, H3K4me3)" in text and "average of other cell types" in text
    metrics = json.loads((tmp_path / "demo_metrics.json").read_text())
    assert set(metrics) == {
        "Avocado (this model)",
        "average of other cell types",
        "track mean (other cell types)",
    }
    imputed = xr.open_zarr(tmp_path / "imputed.zarr", consolidated=False)
    assert imputed.imputed.sizes == {"celltype": 5, "assay": 5, "position": 64_248}
    truth = ax.datasets.roadmap_pilot_sample().signal.sel(celltype="E065", assay="H3K4me3")
    mse = float(((imputed.imputed.sel(celltype="E065", assay="H3K4me3") - truth) ** 2).mean())
    assert abs(mse - metrics["Avocado (this model)"]["mse"]) < 1e-6
    assert (tmp_path / "locus.png").stat().st_size > 10_000
    assert ax.load_model(tmp_path / "model").celltypes == ["E003", "E017", "E065", "E116", "E117"]


def test_fit_then_impute_on_zarr_stores(tmp_path, capsys):
    ds = ax.testing.simulate_compendium(n_positions=3_000, seed=1)
    ax.save_compendium(ds, tmp_path / "sim.zarr", position_chunk=1_000)
    pair = ax.observed_pairs(ds)[1]
    args = ["fit", str(tmp_path / "sim.zarr"), str(tmp_path / "model"), "--epochs", "2"]
    args += ["--validation", f"{pair[0]}:{pair[1]}", "--n-layers", "1", "--n-nodes", "16"]
    args += ["--batch-size", "500", "--device", "cpu", "--quiet"]
    assert main(args) == 0
    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    assert [r["epoch"] for r in lines] == [1, 2] and all("val_mse" in r for r in lines)
    model = ax.load_model(tmp_path / "model")
    assert model.config.n_nodes == 16 and len(model.history) == 2
    out = tmp_path / "imputed.zarr"
    args = ["impute", str(tmp_path / "model"), str(out), "--store", str(tmp_path / "sim.zarr")]
    args += ["--region", "chr1:0-10,000", "--celltypes", "C1", "C2", "--quiet"]
    assert main(args) == 0
    written = xr.open_zarr(out, consolidated=False)
    assert written.imputed.sizes == {"celltype": 2, "assay": 3, "position": 400}
    expected = model.predict("C2", "A0", np.arange(400))
    np.testing.assert_allclose(written.imputed.sel(celltype="C2", assay="A0"), expected, rtol=1e-5)
    args[2] = str(tmp_path / "elsewhere.zarr")
    assert main([*args, "--device", "tpu:x"]) == 2  # checked before anything is written
    assert "device='tpu:x'" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere.zarr.partial").exists()


def test_errors_are_reported_without_traceback(tmp_path, capsys):
    ds = ax.testing.simulate_compendium(n_positions=1_000, seed=1)
    ax.save_compendium(ds, tmp_path / "sim.zarr")
    code = main(["fit", str(tmp_path / "sim.zarr"), str(tmp_path / "m"), "--mask", "C9:A0"])
    assert code == 2
    assert "Unknown celltype ['C9']" in capsys.readouterr().err
