"""The regression baselines (``mixture``, ``cross-assay``) and the smoothed averages: what they fit,
that they never read the track they impute, and that they stay lazy."""

from __future__ import annotations

import functools

import dask.array
import numpy as np
import pytest
import xarray as xr
from _helpers import raise_if_dask_computes
from hypothesis import given, settings
from hypothesis import strategies as st

import avocado_xr as ax
from avocado_xr.evaluation import METHODS, cross_validate
from avocado_xr.evaluation.baselines import (
    BaselineModel,
    impute_average,
    impute_cross_assay,
    impute_mixture,
    mixture_weights,
    track_moments,
)
from avocado_xr.exceptions import ConfigError


def compendium(signal: np.ndarray, observed: np.ndarray | None = None) -> xr.Dataset:
    """A compendium of ``signal`` (celltype, assay, position), unobserved tracks NaN."""
    n_c, n_a, n_p = signal.shape
    ds = ax.testing.simulate_compendium(n_celltypes=n_c, n_assays=n_a, n_positions=n_p, seed=0)
    ds["signal"] = ds.signal.copy(data=signal.astype(np.float32))
    if observed is not None:
        ds["observed"] = ds.observed.copy(data=observed)
        ds["signal"] = ds.signal.where(ds.observed)
    return ds


def test_track_moments_brute_force():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 4, 50))
    observed = rng.random((3, 4)) < 0.7
    m = track_moments(values, observed)
    x = np.where(observed[..., None], values, 0)
    for a in range(4):
        for c in range(3):
            for d in range(3):
                assert np.isclose(m["by_assay"][a, c, d], x[c, a] @ x[d, a])
    for c in range(3):
        for a in range(4):
            assert np.isclose(m["sums"][c, a], x[c, a].sum())
            for b in range(4):
                assert np.isclose(m["by_celltype"][c, a, b], x[c, a] @ x[c, b])


def test_mixture_recovers_a_mixture_of_cell_types():
    """Cell type 0 is 0.5 + 0.3 * cell type 1 + 0.7 * cell type 2 in every assay: the weights
    learned on its other assays impute its hidden assay exactly."""
    rng = np.random.default_rng(1)
    signal = rng.gamma(1.0, size=(4, 3, 2_000))
    signal[0] = 0.5 + 0.3 * signal[1] + 0.7 * signal[2]
    observed = np.ones((4, 3), bool)
    observed[0, 0] = False
    out = impute_mixture(compendium(signal, observed), celltypes="C0", assays="A0")
    np.testing.assert_allclose(out.imputed.values[0, 0], signal[0, 0], atol=1e-4)
    # the average would not be: the check can fail
    avg = impute_average(compendium(signal, observed), celltypes="C0", assays="A0")
    assert np.abs(avg.imputed.values[0, 0] - signal[0, 0]).max() > 0.1


def test_mixture_ridge_shrinks_towards_the_average():
    """``ridge`` pulls the planted mixture's donor weights towards equal weights (the
    average's), all the way for a huge ridge; 0 is the plain fit."""
    rng = np.random.default_rng(1)
    signal = rng.gamma(1.0, size=(4, 3, 2_000))
    signal[0] = 0.5 + 0.3 * signal[1] + 0.7 * signal[2]
    observed = np.ones((4, 3), bool)
    observed[0, 0] = False
    moments = track_moments(signal, observed)

    def donors(ridge):
        return mixture_weights(moments, observed, [0], [0], ridge=ridge)[0, 0, 2:]

    gaps = [np.abs(donors(r) - 1 / 3).max() for r in (0.0, 0.01, 0.1, 1e6)]
    assert gaps[0] > gaps[1] > gaps[2] > gaps[3] and gaps[3] < 1e-4
    np.testing.assert_allclose(donors(0.0), [0.3, 0.7, 0.0], atol=1e-4)
    plain = impute_mixture(compendium(signal, observed), celltypes="C0", assays="A0")
    same = impute_mixture(compendium(signal, observed), celltypes="C0", assays="A0", ridge=0.0)
    np.testing.assert_array_equal(plain.imputed.values, same.imputed.values)
    shrunk = impute_mixture(compendium(signal, observed), celltypes="C0", assays="A0", ridge=1e6)
    assert np.abs(shrunk.imputed.values[0, 0] - signal[0, 0]).max() > 0.1


def test_cross_assay_recovers_a_linear_map_between_assays():
    """In every cell type assay 0 is 1 + 2 * assay 1 - assay 2."""
    rng = np.random.default_rng(2)
    signal = rng.gamma(1.0, size=(4, 3, 2_000))
    signal[:, 0] = 1 + 2 * signal[:, 1] - signal[:, 2]
    observed = np.ones((4, 3), bool)
    observed[3, 0] = False
    out = impute_cross_assay(compendium(signal, observed), celltypes="C3", assays="A0")
    np.testing.assert_allclose(out.imputed.values[0, 0], signal[3, 0], atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 3), st.integers(0, 2))
def test_an_observed_track_does_not_impute_itself(seed, c, a):
    """Changing an observed track's values changes nothing in its own imputation (the
    smoothed average's too)."""
    rng = np.random.default_rng(seed)
    signal = rng.gamma(1.0, size=(4, 3, 300))
    observed = rng.random((4, 3)) < 0.8
    observed[c, a] = True
    changed = signal.copy()
    changed[c, a] = rng.gamma(3.0, size=300)
    smoothed = functools.partial(impute_average, window=9)
    for impute in (impute_mixture, impute_cross_assay, smoothed):
        before, after = (
            impute(compendium(s, observed), celltypes=f"C{c}", assays=f"A{a}").imputed.values
            for s in (signal, changed)
        )
        np.testing.assert_array_equal(before, after)
        assert np.isfinite(before).all()


def test_fallbacks():
    """No assay shared with every donor: the mixture is the average. No other assay in the
    cell type: the cross-assay map is the donors' mean. No donor: 0, as for the average."""
    rng = np.random.default_rng(3)
    signal = rng.gamma(1.0, size=(3, 3, 100))
    observed = np.array([[True, False, False], [True, True, True], [False, True, False]])
    ds = compendium(signal, observed)
    mix = impute_mixture(ds, celltypes="C0", assays="A1").imputed.values[0, 0]
    np.testing.assert_allclose(mix, signal[1:, 1].mean(0), rtol=1e-5)
    cross = impute_cross_assay(ds, celltypes="C0", assays="A0").imputed.values[0, 0]
    np.testing.assert_allclose(cross, signal[1, 0].mean(), rtol=1e-5)
    for impute in (impute_mixture, impute_cross_assay):
        assert (impute(ds, celltypes="C1", assays="A2").imputed.values == 0).all()


def test_lazy_and_equal_to_eager(sample):
    train = sample.avocado.mask([("E065", "H3K4me3"), ("E017", "H3K27me3")])
    chunked = train.copy()
    chunked["signal"] = train.signal.copy(
        data=dask.array.from_array(train.signal.values, (5, 5, 10_000))
    )
    for impute in (impute_mixture, impute_cross_assay):
        with raise_if_dask_computes():
            lazy = impute(chunked, celltypes=["E065", "E017"])
        assert isinstance(lazy.imputed.data, dask.array.Array)
        eager = impute(train, celltypes=["E065", "E017"])
        np.testing.assert_allclose(lazy.imputed.values, eager.imputed.values, rtol=1e-5, atol=1e-5)


def test_smoothed_average_lazy_equal_to_eager_and_within_runs(sample):
    """The moving mean is the same whatever the chunks (blocks overlap by half a window),
    builds without computing, and never mixes two runs of bins (the sample has three)."""
    train = sample.avocado.mask([("E065", "H3K4me3")])
    eager = impute_average(train, celltypes="E065", window=33).imputed.values[0]
    plain = impute_average(train, celltypes="E065").imputed.values[0]
    for chunks in (10_000, 7):
        chunked = train.copy()
        chunked["signal"] = train.signal.copy(
            data=dask.array.from_array(train.signal.values, (5, 5, chunks))
        )
        with raise_if_dask_computes():
            lazy = impute_average(chunked, celltypes="E065", window=33)
        assert lazy.attrs["method"] == "average-w33"
        np.testing.assert_allclose(lazy.imputed.values[0], eager, rtol=1e-5, atol=1e-6)
    starts = np.flatnonzero(np.diff(sample.start.values) != 25) + 1  # first bin of runs 2, 3
    assert len(starts) == 2
    for first in starts:  # the last bin of a run and the first of the next: own runs only
        np.testing.assert_allclose(eager[:, first - 1], plain[:, first - 17 : first].mean(-1), 1e-5)
        np.testing.assert_allclose(eager[:, first], plain[:, first : first + 17].mean(-1), 1e-5)


@pytest.mark.parametrize("window", [0, 2, -3, 1.0, True])
def test_smoothed_average_bad_window(sample, window):
    with pytest.raises(ConfigError, match="window"):
        impute_average(sample, window=window)


@pytest.mark.parametrize(
    ("method", "beats"),
    [("mixture", "average"), ("cross-assay", "mean"), ("average-w9", "average")],
)
def test_registered_and_cross_validated(sample, method, beats):
    """Each is a cross-validation method; on the real sample each imputes every held-out
    track, the mixture and the smoothed average with a lower mean squared error than the
    average of the other cell types, the cross-assay map than the best constant."""
    assert METHODS[method].kind == "baseline"
    assert repr(BaselineModel(method)) == f"<BaselineModel: {method}>"
    cv = cross_validate(sample, k=5, method=method, seed=0)
    reference = cross_validate(sample, k=5, method=beats, seed=0)
    assert int(cv.imputed.notnull().all("position").sum()) == 25
    mse = cv.score.sel(metric="mse")
    assert bool(mse.notnull().all())
    assert float(mse.mean()) < float(reference.score.sel(metric="mse").mean())
