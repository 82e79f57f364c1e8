"""Cross-validation over observed tracks, for Avocado and the baselines, and the report."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from _helpers import raise_if_dask_computes

import avocado_xr as ax
from avocado_xr.cli import main
from avocado_xr.evaluation.baselines import impute_average

SMALL = {"n_layers": 1, "n_nodes": 16, "batch_size": 1_000, "device": "cpu"}


def _training_tracks_left(ds, folds):
    observed = ds.observed.values
    for fold in range(int(folds.max()) + 1):
        train = observed & (folds.values != fold)
        assert train.any(axis=1).all() and train.any(axis=0).all(), fold


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_folds_keep_a_training_track_for_every_celltype_and_assay(seed):
    ds = ax.testing.simulate_compendium(n_celltypes=6, n_assays=5, n_positions=500, seed=seed)
    folds = ax.make_folds(ds, k=5, seed=seed)
    observed = ds.observed.values
    assert (folds.values[~observed] == -1).all()
    _training_tracks_left(ds, folds)
    sizes = np.bincount(folds.values[folds.values >= 0])
    assert sizes.max() - sizes.min() <= 1  # balanced


def test_tracks_that_cannot_be_held_out_are_reported():
    ds = ax.testing.simulate_compendium(n_celltypes=3, n_assays=2, n_positions=500, seed=0)
    ds = ds.avocado.mask([("C0", "A1")])  # C0 keeps a single track: it can never be held out
    with pytest.warns(UserWarning, match=r"\('C0', 'A0'\).*never be held out"):
        folds = ax.make_folds(ds, k=2, seed=0)
    assert int(folds.sel(celltype="C0", assay="A0")) == -1
    _training_tracks_left(ds, folds)


def test_average_method_is_lazy_and_out_of_fold(sample, tmp_path):
    ax.save_compendium(sample, tmp_path / "s.zarr")
    lazy = ax.open_compendium(tmp_path / "s.zarr")
    with raise_if_dask_computes():
        cv = ax.cross_validate(lazy, k=5, method="average", evaluate=False)
    folds = cv.fold
    for c, a in [("E065", "H3K4me3"), ("E003", "H3K27me3")]:
        fold = int(folds.sel(celltype=c, assay=a))
        held = [
            (sample.celltype.values[i], sample.assay.values[j])
            for i, j in np.argwhere(folds.values == fold)
        ]
        expected = impute_average(sample.avocado.mask(held)).imputed.sel(celltype=c, assay=a)
        np.testing.assert_allclose(cv.imputed.sel(celltype=c, assay=a), expected, rtol=1e-6)
    assert bool(cv.imputed.notnull().all())


def test_avocado_out_of_fold_equals_a_model_trained_without_the_fold():
    ds = ax.testing.simulate_compendium(
        n_celltypes=4, n_assays=3, n_positions=1_500, seed=5, missing_frac=0.0
    )
    ds = ds.avocado.mask([("C1", "A2")])
    cv = ax.cross_validate(ds, k=3, method="avocado", seed=7, evaluate=False, epochs=2, **SMALL)
    fold = 1
    held = [
        (ds.celltype.values[i], ds.assay.values[j]) for i, j in np.argwhere(cv.fold.values == fold)
    ]
    model = ax.fit(ds.avocado.mask(held), epochs=2, seed=7 + fold, **SMALL)
    c, a = held[0]
    np.testing.assert_allclose(
        cv.imputed.sel(celltype=c, assay=a), model.predict(c, a), rtol=1e-5, atol=1e-6
    )
    observed = ds.observed.values & (cv.fold.values >= 0)
    assert np.isfinite(cv.imputed.values[observed]).all()
    assert np.isnan(cv.imputed.values[~ds.observed.values]).all()


def test_custom_method_and_scores(sample):
    calls = []

    class Constant:
        """A custom method's fitted model: anything with impute(ds, *, celltypes, assays,
        merge)."""

        def impute(self, ds, *, celltypes, assays, merge):
            imputed = xr.full_like(ds.signal.sel(celltype=celltypes, assay=assays), 0.3)
            return imputed.rename("imputed").to_dataset()

    def constant(train, *, seed):
        calls.append(seed)
        return Constant()

    cv = ax.cross_validate(sample, k=5, method=constant, seed=10, annotations="pilot")
    assert calls == [10, 11, 12, 13, 14]
    score = cv.score.compute()
    assert score.dims == ("celltype", "assay", "metric")
    truth = sample.signal.sel(celltype="E017", assay="H3K9me3").values
    mse = float(score.sel(celltype="E017", assay="H3K9me3", metric="mse"))
    assert mse == pytest.approx(float(np.mean((truth - 0.3) ** 2)), rel=1e-5)
    assert np.isnan(float(score.sel(celltype="E017", assay="H3K9me3", metric="gwcorr")))
    with pytest.raises(ax.AvocadoXrError, match="Unknown method"):
        ax.cross_validate(sample, method="chromimpute")


def test_evaluate_command_reduced(tmp_path, capsys):
    """Every method end to end on the embedded real sample, in a reduced setting."""
    args = ["evaluate", "sample", "--k", "3", "--epochs", "1", "--batch-size", "8000"]
    args += ["--ae-windows", "2000", "--output", str(tmp_path), "--quiet", "--inner-k", "2"]
    args += ["--track", "E065:H3K4me3", "--locus", "chr11:2,150,000-2,170,000"]
    assert main(args) == 0
    out = capsys.readouterr().out
    methods = ("avocado", "avocado-average", "linear", "average", "average-w9", "average-w33")
    for method in (*methods, "mean", "mixture", "cross-assay", "autoencoder", "ensemble"):
        assert f"## {method} (3-fold" in out
    assert "| average |" in out
    scores = (tmp_path / "scores.csv").read_text().splitlines()
    assert scores[0] == "method,track,metric,value"
    assert len(scores) == 1 + 11 * 26 * 17  # 11 methods x (25 tracks + mean) x 17 metrics
    for name in ("metrics.png", "scatter.png", "locus.png", "summary.md"):
        assert (tmp_path / name).stat().st_size > 100
