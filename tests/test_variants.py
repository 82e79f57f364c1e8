"""Model variants: the average-of-other-cell-types input and the linear (PREDICTD-style) model."""

from __future__ import annotations

import numpy as np
import pytest

import avocado_xr as ax

SMALL = {"n_layers": 1, "n_nodes": 32, "batch_size": 1_000, "device": "cpu"}
HIDDEN = ("E065", "H3K4me3")


@pytest.mark.parametrize("average", ["input", "residual"])
def test_average_variant_validation_equals_its_imputation(sample, average):
    """Training-time held-out MSE and the lazy imputation compute the same average input."""
    model = ax.fit(sample, epochs=2, validation=[HIDDEN], average=average, **SMALL)
    train = sample.avocado.mask([HIDDEN])
    imputed = model.impute(train, celltypes=HIDDEN[0], assays=HIDDEN[1]).imputed.values.ravel()
    truth = sample.signal.sel(celltype=HIDDEN[0], assay=HIDDEN[1]).values
    assert float(np.mean((imputed - truth) ** 2)) == pytest.approx(
        model.history[-1]["val_mse"], rel=1e-4
    )
    with pytest.raises(ax.AvocadoXrError, match="needs the compendium"):
        model.impute(train[["chrom", "start"]])


def test_residual_variant_starts_from_the_average(sample):
    """An untrained residual network adds a small correction to the average baseline."""
    from avocado_xr.evaluation.baselines import average_baseline

    model = ax.fit(sample, epochs=0, average="residual", **SMALL)
    train = sample.avocado.mask([HIDDEN])
    imputed = model.impute(train, celltypes=HIDDEN[0], assays=HIDDEN[1]).imputed.values.ravel()
    baseline = average_baseline(train, *HIDDEN).values
    assert np.corrcoef(imputed, baseline)[0, 1] > 0.9


def test_linear_model_learns_and_round_trips(sample, tmp_path):
    model = ax.fit(sample, epochs=4, validation=[HIDDEN], architecture="linear", **SMALL)
    assert model.net.celltype.weight.shape == (5, 110)  # factors of the genome features' width
    assert model.net.linears() == []
    val = [h["val_mse"] for h in model.history]
    assert val[-1] < val[0]
    model.save(tmp_path / "linear")
    loaded = ax.load_model(tmp_path / "linear")
    np.testing.assert_array_equal(loaded.predict(*HIDDEN), model.predict(*HIDDEN))
    with pytest.raises(ValueError, match="linear architecture does not take the average"):
        ax.AvocadoConfig(architecture="linear", average="input")
