"""Imputation quality measures: hand-computed values, scipy/sklearn, and evaluate()."""

from __future__ import annotations

import math

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _helpers import raise_if_dask_computes
from scipy import stats
from sklearn import metrics as skm

import avocado_xr as ax
from avocado_xr.evaluation import metrics as m
from avocado_xr.evaluation.annotations import enhancers, pilot_annotations
from avocado_xr.evaluation.baselines import average_baseline, impute_average
from avocado_xr.evaluation.scoring import evaluate, metric_table
from avocado_xr.exceptions import MetricError, UnknownCelltypeError

# A 10-position example: the top 1% is the single largest value (k = max(1, floor(0.1)) = 1)
Y10 = np.array([0.0, 1.0, 0.5, 4.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0])
P10 = np.array([0.5, 1.0, 3.0, 2.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.5])


def _random(n=2_000, seed=1, decimals=None):
    rng = np.random.default_rng(seed)
    y = rng.gamma(0.5, 1.0, n)
    p = 0.7 * y + rng.normal(0, 0.5, n)
    if decimals is not None:
        y, p = np.round(y, decimals), np.round(p, decimals)
    return y, p


# ----------------------------------------------------------------- hand-computed values


def test_mse_hand_computed():
    # squared errors: .25, 0, 6.25, 4, 0, 0, 1, 0, 0, .25 -> sum 11.75
    assert m.mse(Y10, P10) == pytest.approx(1.175)
    keep = np.arange(10) < 4  # .25 + 0 + 6.25 + 4
    assert m.mse(Y10, P10, mask=keep) == pytest.approx(10.5 / 4)


def test_top1_sets_on_ten_positions():
    np.testing.assert_array_equal(m.top_fraction(Y10), np.eye(10)[3])
    assert m.mse1obs(Y10, P10) == pytest.approx((4.0 - 2.0) ** 2)  # position 3
    assert m.mse1imp(Y10, P10) == pytest.approx((0.5 - 3.0) ** 2)  # position 2
    assert m.match1(Y10, P10) == 0.0  # top observed (3) is not the top imputed (2)
    # top 5% of 10 is also one position
    assert m.catch1obs(Y10, P10) == 0.0
    assert m.catch1imp(Y10, P10) == 0.0
    assert m.match1(Y10, Y10 * 2) == 1.0


def test_top_sets_on_hundred_positions():
    y = np.zeros(100)
    y[:5] = [9, 8, 7, 6, 5]  # top 1% = {0}, top 5% = {0..4}
    p = np.zeros(100)
    p[[1, 0, 50]] = [9, 8, 7]  # top 1% = {1}, top 5% = {1, 0, 50, + 2 of the 97 tied zeros}
    assert m.match1(y, p) == 0.0
    assert m.catch1obs(y, p) == 1.0  # observed top (0) is in the imputed top 5%
    assert m.catch1imp(y, p) == 1.0  # imputed top (1) is in the observed top 5%
    # imputed top 5%: 3 clear members and 2 slots shared by the 97 zeros -> 2/97 each
    np.testing.assert_allclose(m.top_fraction(p, 0.05)[[1, 0, 50, 2]], [1, 1, 1, 2 / 97])


def test_ties_share_the_last_slots():
    y = np.zeros(200)
    y[:4] = [5.0, 3.0, 3.0, 3.0]  # k = 2: position 0, then 1 slot shared by three 3.0s
    w = m.top_fraction(y)
    np.testing.assert_allclose(w[:5], [1, 1 / 3, 1 / 3, 1 / 3, 0])
    assert w.sum() == pytest.approx(2)
    p = np.zeros(200)
    p[:4] = [5.0, 3.0, 2.0, 1.0]
    # errors on the top set: 0 (weight 1), 0, 1, 4 (weight 1/3 each) -> (5/3) / 2
    assert m.mse1obs(y, p) == pytest.approx((5 / 3) / 2)
    # imputed top 2 = {0, 1} exactly; observed membership 1 and 1/3 -> (1 + 1/3) / 2
    assert m.match1(y, p) == pytest.approx((1 + 1 / 3) / 2)


def test_ties_are_the_expectation_over_random_tie_breaking():
    y = np.zeros(200)
    y[:4] = [5.0, 3.0, 3.0, 3.0]
    p = np.arange(200.0)[::-1]
    rng = np.random.default_rng(0)
    draws = []
    for second in (1, 2, 3):  # every way to pick the second member
        top = np.zeros(200, dtype=bool)
        top[[0, second]] = True
        draws.append(np.mean((y[top] - p[top]) ** 2))
    assert m.mse1obs(y, p) == pytest.approx(np.mean(draws))
    # the result does not depend on the order of the positions
    perm = rng.permutation(200)
    for fn in (m.mse1obs, m.mse1imp, m.match1, m.catch1obs, m.catch1imp, m.aucobs1, m.aucimp1):
        assert fn(y[perm], p[perm]) == pytest.approx(fn(y, p))


def test_constant_imputation_scores_at_chance():
    y, _ = _random()
    p = np.full_like(y, 0.3)
    assert m.match1(y, p) == pytest.approx(0.01)
    assert m.catch1obs(y, p) == pytest.approx(0.05)
    assert m.aucobs1(y, p) == pytest.approx(0.5)
    assert m.aucimp1(y, p) == pytest.approx(0.5)
    assert m.mse1imp(y, p) == pytest.approx(m.mse(y, p))
    assert math.isnan(m.gwcorr(y, p)) and math.isnan(m.gwspear(y, p))


def test_auc_hand_computed():
    y = np.zeros(100)
    y[0] = 9.0
    p = np.zeros(100)
    p[:3] = [0.5, 1.0, 0.5]  # the positive ties with position 2, loses to 1, beats 97
    assert m.aucobs1(y, p) == pytest.approx((97 + 0.5) / 99)
    assert m.aucimp1(p * 0 + y, y) == pytest.approx(1.0)


def test_region_mses_hand_computed():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    p = np.array([1.0, 1.0, 0.0, 0.0])  # squared errors 1, 0, 4, 9
    region = np.array([True, False, True, False])
    for fn in (m.mseprom, m.msegene, m.mseenh):
        assert fn(y, p, region) == pytest.approx(2.5)
        assert math.isnan(fn(y, p, np.zeros(4, dtype=bool)))
    assert m.mseprom(y, p, region, mask=np.array([True, True, False, True])) == 1.0


def test_msevar_hand_computed():
    y = np.array([0.0, 1.0, 2.0, 3.0])
    p = np.array([1.0, 1.0, 0.0, 0.0])  # squared errors 1, 0, 4, 9
    others = np.array([[0.0, 1.0, 2.0, 3.0], [2.0, 1.0, 2.0, 5.0]])  # same assay, 2 cell types
    variance = others.var(axis=0)  # population variances 1, 0, 0, 1
    assert m.msevar(y, p, variance) == pytest.approx((1 * 1 + 9 * 1) / 2)
    assert math.isnan(m.msevar(y, p, np.zeros(4)))


def test_correlations_hand_computed():
    assert m.gwcorr([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]) == pytest.approx(
        (1 * 1.333333 + 0 + 1 * 1.666667)
        / math.sqrt(2 * (1.333333**2 + 0.333333**2 + 1.666667**2)),
        rel=1e-5,
    )
    # ranks of [1, 1, 2] are [1.5, 1.5, 3]
    assert m.gwspear([1.0, 1.0, 2.0], [1.0, 2.0, 3.0]) == pytest.approx(
        np.corrcoef([1.5, 1.5, 3.0], [1.0, 2.0, 3.0])[0, 1]
    )


def test_peaks_hand_computed():
    t = m.PEAK_THRESHOLD
    assert t == pytest.approx(1.4436, abs=1e-4) and math.sinh(t) == pytest.approx(2.0)
    y = np.array([0.0, 2.0, 3.0, 2.0, 1.0])  # observed peaks (>= t) at 1, 2, 3
    p = np.array([2.0, 0.5, 2.0, 1.5, 0.0])  # imputed peaks at 0, 2, 3
    assert m.peak_recall(y, p) == pytest.approx(2 / 3)
    assert m.peak_precision(y, p) == pytest.approx(2 / 3)
    assert m.peak_recall(y, p, threshold=2.5) == 0.0  # observed {2}, imputed {}
    assert math.isnan(m.peak_precision(y, p, threshold=2.5))
    called = np.array([True, False, False, False, False])
    assert m.peak_recall(y, p, peaks=called) == 1.0
    assert m.peak_precision(y, p, peaks=called) == pytest.approx(1 / 3)
    # CatchPeakObs: positives 1, 2, 3 scored .5, 2, 1.5; negatives 0, 4 scored 2, 0
    assert m.catchpeakobs(y, p) == pytest.approx((1 + 1.5 + 1) / 6)
    # positive 0 scored 2 beats .5, 1.5, 0 and ties with 2
    assert m.catchpeakobs(y, p, peaks=called) == pytest.approx(3.5 / 4)
    assert math.isnan(m.catchpeakobs(y, p, peaks=np.zeros(5, dtype=bool)))


# ----------------------------------------------------------- independent implementations


@pytest.mark.parametrize("decimals", [None, 1])
def test_against_scipy_and_sklearn(decimals):
    y, p = _random(decimals=decimals)
    assert m.mse(y, p) == pytest.approx(skm.mean_squared_error(y, p))
    assert m.gwcorr(y, p) == pytest.approx(stats.pearsonr(y, p)[0])
    assert m.gwspear(y, p) == pytest.approx(stats.spearmanr(y, p)[0])
    t = 1.0
    truth, called = y >= t, p >= t
    assert m.peak_recall(y, p, threshold=t) == pytest.approx(skm.recall_score(truth, called))
    assert m.peak_precision(y, p, threshold=t) == pytest.approx(skm.precision_score(truth, called))
    assert m.catchpeakobs(y, p, threshold=t) == pytest.approx(skm.roc_auc_score(truth, p))


def test_top_sets_against_sklearn_without_ties():
    y, p = _random()  # continuous: no ties; k = 20 of 2000
    top_y = y >= np.sort(y)[-20]
    top_p = p >= np.sort(p)[-20]
    assert top_y.sum() == top_p.sum() == 20
    assert m.mse1obs(y, p) == pytest.approx(skm.mean_squared_error(y[top_y], p[top_y]))
    assert m.mse1imp(y, p) == pytest.approx(skm.mean_squared_error(y[top_p], p[top_p]))
    assert m.aucobs1(y, p) == pytest.approx(skm.roc_auc_score(top_y, p))
    assert m.aucimp1(y, p) == pytest.approx(skm.roc_auc_score(top_p, y))
    assert m.match1(y, p) == pytest.approx((top_y & top_p).sum() / 20)
    top5_p = p >= np.sort(p)[-100]
    top5_y = y >= np.sort(y)[-100]
    assert m.catch1obs(y, p) == pytest.approx((top_y & top5_p).sum() / 20)
    assert m.catch1imp(y, p) == pytest.approx((top_p & top5_y).sum() / 20)


def test_auc_with_tied_boundary_against_weighted_sklearn():
    y, p = _random(decimals=0)  # many ties, also at the top-1% boundary
    w = m.top_fraction(y)
    assert ((w > 0) & (w < 1)).any()
    labels = np.r_[np.ones(len(y)), np.zeros(len(y))]
    expected = skm.roc_auc_score(labels, np.r_[p, p], sample_weight=np.r_[w, 1 - w])
    assert m.aucobs1(y, p) == pytest.approx(expected)


def test_measure_errors():
    with pytest.raises(MetricError, match="equal length"):
        m.mse([1.0, 2.0], [1.0])
    with pytest.raises(MetricError, match="non-finite"):
        m.gwcorr([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(MetricError, match="boolean"):
        m.mse([1.0, 2.0], [1.0, 2.0], mask=[1, 0])
    with pytest.raises(MetricError, match="fraction"):
        m.mse1obs([1.0, 2.0], [1.0, 2.0], fraction=0)
    assert m.mse([1.0, np.nan], [1.0, 2.0], mask=[True, False]) == 0.0


# ------------------------------------------------------------------------------ evaluate


def _imputation(ds, pairs):
    """Average-baseline imputation of ``pairs`` (others NaN) as an ``imputed`` Dataset."""
    celltypes = sorted({c for c, _ in pairs})
    assays = sorted({a for _, a in pairs})
    blank = xr.full_like(ds.signal.isel(celltype=0, assay=0), np.nan).reset_coords(drop=True)
    rows = []
    for c in celltypes:
        row = [
            average_baseline(ds, c, a).reset_coords(drop=True) if (c, a) in pairs else blank
            for a in assays
        ]
        rows.append(xr.concat(row, dim="assay"))
    imp = xr.concat(rows, dim="celltype").astype(np.float32)
    imp = imp.assign_coords(celltype=celltypes, assay=assays, chrom=ds.chrom, start=ds.start)
    return imp.transpose("celltype", "assay", "position").to_dataset(name="imputed")


def test_evaluate_matches_direct_computation_on_pilot(pilot):
    pairs = [("E065", "H3K4me3"), ("E116", "H3K27me3")]
    imp = _imputation(pilot, pairs)
    ann = pilot_annotations(pilot)
    scores = evaluate(pilot, imp, annotations=ann)
    assert scores.score.dims == ("celltype", "assay", "metric")
    assert list(scores.metric.values) == list(m.METRICS)
    for c, a in pairs:
        y = pilot.signal.sel(celltype=c, assay=a).values.astype(np.float64)
        p = imp.imputed.sel(celltype=c, assay=a).values.astype(np.float64)
        got = scores.score.sel(celltype=c, assay=a)
        var = pilot.signal.sel(assay=a).values.astype(np.float64).var(axis=0)
        prom, gene = ann.promoter.values, ann.gene_body.values
        expected = {
            "mse": np.mean((y - p) ** 2),
            "gwcorr": stats.pearsonr(y, p)[0],
            "gwspear": stats.spearmanr(y, p)[0],
            "mseprom": np.mean((y[prom] - p[prom]) ** 2),
            "msegene": np.mean((y[gene] - p[gene]) ** 2),
            "msevar": np.sum(var * (y - p) ** 2) / var.sum(),
            "mse1obs": m.mse1obs(y, p),
            "aucobs1": m.aucobs1(y, p),
            "aucimp1": m.aucimp1(y, p),
            "match1": m.match1(y, p),
            "catch1obs": m.catch1obs(y, p),
            "catch1imp": m.catch1imp(y, p),
            "recall": skm.recall_score(y >= m.PEAK_THRESHOLD, p >= m.PEAK_THRESHOLD),
            "precision": skm.precision_score(y >= m.PEAK_THRESHOLD, p >= m.PEAK_THRESHOLD),
            "catchpeakobs": skm.roc_auc_score(y >= m.PEAK_THRESHOLD, p),
        }
        for name, value in expected.items():
            assert float(got.sel(metric=name)) == pytest.approx(value, rel=1e-6), name
        assert math.isnan(float(got.sel(metric="mseenh")))  # no enhancer annotation
    # tracks that are not imputed (NaN) score NaN
    assert np.isnan(scores.score.sel(celltype="E065", assay="H3K27me3")).all()
    table = metric_table(scores)
    assert list(table.index) == ["E065/H3K4me3", "E116/H3K27me3", "mean"]
    assert table.loc["mean", "mse"] == pytest.approx(table["mse"].iloc[:2].mean())


def test_evaluate_unobserved_tracks_are_nan(sample):
    pairs = [("E065", "H3K4me3"), ("E003", "H3K4me3")]
    imp = _imputation(sample, pairs)
    hidden = ax.mask(sample, [("E003", "H3K4me3")])
    scores = evaluate(hidden, imp, metrics=["MSEglobal", "AucObs1", "msevar"])
    assert list(scores.metric.values) == ["mse", "aucobs1", "msevar"]
    assert np.isnan(scores.score.sel(celltype="E003", assay="H3K4me3")).all()
    # msevar uses only the observed cell types of the assay
    y = sample.signal.sel(celltype="E065", assay="H3K4me3").values.astype(np.float64)
    p = imp.imputed.sel(celltype="E065", assay="H3K4me3").values.astype(np.float64)
    donors = [c for c in sample.celltype.values if c != "E003"]
    var = sample.signal.sel(assay="H3K4me3", celltype=donors).values.astype(np.float64).var(0)
    got = scores.score.sel(celltype="E065", assay="H3K4me3", metric="msevar")
    assert float(got) == pytest.approx(m.msevar(y, p, var))
    assert metric_table(scores).index.tolist() == ["E065/H3K4me3", "mean"]


def test_evaluate_is_lazy_on_zarr(sample, tmp_path):
    ds = sample.isel(position=slice(0, 30_000))
    ax.save_compendium(ds, tmp_path / "pilot.zarr", position_chunk=10_000)
    lazy = ax.open_compendium(tmp_path / "pilot.zarr")
    pairs = [("E065", "H3K4me3"), ("E117", "H3K36me3")]
    with raise_if_dask_computes():
        ann = pilot_annotations(lazy)
        imp = _imputation(lazy, pairs)
        peaks = lazy.signal >= 2.0  # lazy peak calls
        scores = evaluate(lazy, imp, annotations=ann, peaks=peaks)
    assert isinstance(scores.score.data, da.Array)
    # one task per track: one chunk per (celltype, assay)
    assert scores.score.data.chunks[:2] == ((1, 1), (1, 1))
    eager = evaluate(ds, _imputation(ds, pairs), annotations=ann, peaks=ds.signal >= 2.0)
    np.testing.assert_allclose(scores.score.values, eager.score.values, rtol=1e-6)
    y = ds.signal.sel(celltype="E065", assay="H3K4me3").values
    p = eager.score.sel(celltype="E065", assay="H3K4me3", metric="catchpeakobs")
    imputed = _imputation(ds, pairs).imputed.sel(celltype="E065", assay="H3K4me3").values
    assert float(p) == pytest.approx(skm.roc_auc_score(y >= 2.0, imputed))


def test_evaluate_region_subset_and_mask(sample):
    imp = _imputation(sample, [("E065", "H3K4me3")])
    sub = ax.region(imp, "chr11:1,700,000-2,000,000")
    scores = evaluate(sample, sub, metrics=["mse", "gwcorr"], annotations="pilot")
    y = ax.region(sample, "chr11:1,700,000-2,000,000").signal.sel(celltype="E065", assay="H3K4me3")
    p = sub.imputed.sel(celltype="E065", assay="H3K4me3")
    assert float(scores.score.sel(celltype="E065", assay="H3K4me3", metric="mse")) == (
        pytest.approx(m.mse(y.values, p.values))
    )
    keep = sample.chrom.values == "chr20"
    masked = evaluate(sample, imp, metrics="mse", mask=keep)
    full_p = imp.imputed.sel(celltype="E065", assay="H3K4me3").values
    full_y = sample.signal.sel(celltype="E065", assay="H3K4me3").values
    assert float(masked.score.sel(celltype="E065", assay="H3K4me3", metric="mse")) == (
        pytest.approx(m.mse(full_y, full_p, mask=keep))
    )
    assert masked.attrs["positions"] == int(keep.sum())


def test_evaluate_peaks_mapping_with_bed(sample):
    imp = _imputation(sample, [("E065", "H3K4me3")])
    bed = pd.DataFrame({"chrom": ["chr20"], "start": [33_900_000], "end": [34_000_000]})
    scores = evaluate(sample, imp, metrics=["catchpeakobs"], peaks={("E065", "H3K4me3"): bed})
    called = ax.annotations.intervals_mask(bed, sample).values
    y = sample.signal.sel(celltype="E065", assay="H3K4me3").values
    p = imp.imputed.sel(celltype="E065", assay="H3K4me3").values
    got = float(scores.score.squeeze())
    assert got == pytest.approx(m.catchpeakobs(y, p, peaks=called))
    assert got == pytest.approx(skm.roc_auc_score(called, p))


def test_evaluate_errors(sample):
    imp = _imputation(sample, [("E065", "H3K4me3")])
    with pytest.raises(MetricError, match="Unknown metric 'mse2'"):
        evaluate(sample, imp, metrics=["mse2"])
    with pytest.raises(MetricError, match="Unknown annotation"):
        evaluate(sample, imp, annotations={"promoters": np.ones(10, dtype=bool)})
    with pytest.raises(MetricError, match="positions"):
        evaluate(sample, imp, annotations={"promoter": np.ones(10, dtype=bool)})
    with pytest.raises(UnknownCelltypeError, match="E999"):
        evaluate(sample, imp.assign_coords(celltype=["E999"]))
    with pytest.raises(ax.AvocadoXrError, match="imputed"):
        evaluate(sample, imp.rename(imputed="signal"))


# ------------------------------------------- every measure through evaluate(), independently

#: tracks of the embedded sample without ties at the 1%, 2%, 5% and 10% boundaries of either
#: the observed or the imputed signal (the top sets are then plain top-k sets)
SAMPLE_CELLTYPES, SAMPLE_ASSAYS = ["E003", "E117"], ["H3K4me3", "H3K4me1"]


def _top(x, fraction):
    """Boolean mask of the ``int(n * fraction)`` largest values of ``x``, checked untied."""
    k = int(len(x) * fraction)
    order = np.argsort(x)
    assert x[order[-k]] > x[order[-k - 1]], "tie at the top-set boundary"
    top = np.zeros(len(x), dtype=bool)
    top[order[-k:]] = True
    return top


def _independent(y, p, variance, regions, fraction, catch_fraction, threshold):
    """Every measure of METRICS from scipy, sklearn and top-k sets built here."""
    obs1, imp1 = _top(y, fraction), _top(p, fraction)
    obs5, imp5 = _top(y, catch_fraction), _top(p, catch_fraction)
    k = obs1.sum()
    truth, called = y >= threshold, p >= threshold
    return {
        "mse": skm.mean_squared_error(y, p),
        "mse1obs": skm.mean_squared_error(y[obs1], p[obs1]),
        "mse1imp": skm.mean_squared_error(y[imp1], p[imp1]),
        "mseprom": skm.mean_squared_error(y[regions["promoter"]], p[regions["promoter"]]),
        "msegene": skm.mean_squared_error(y[regions["gene_body"]], p[regions["gene_body"]]),
        "mseenh": skm.mean_squared_error(y[regions["enhancer"]], p[regions["enhancer"]]),
        "msevar": np.average((y - p) ** 2, weights=variance),
        "gwcorr": stats.pearsonr(y, p)[0],
        "gwspear": stats.spearmanr(y, p)[0],
        "match1": (obs1 & imp1).sum() / k,
        "catch1obs": (obs1 & imp5).sum() / k,
        "catch1imp": (imp1 & obs5).sum() / k,
        "aucobs1": skm.roc_auc_score(obs1, p),
        "aucimp1": skm.roc_auc_score(imp1, y),
        "catchpeakobs": skm.roc_auc_score(truth, p),
        "recall": skm.recall_score(truth, called),
        "precision": skm.precision_score(truth, called),
    }


@pytest.mark.parametrize(
    "settings",
    [{}, {"fraction": 0.02, "catch_fraction": 0.1, "threshold": 1.0}],
    ids=["defaults", "other-fractions-and-threshold"],
)
def test_evaluate_every_measure_against_independent_computations(sample, settings):
    ds = sample
    held_out = [("E003", "H3K4me1"), ("E117", "H3K4me3")]
    imp = impute_average(ds.avocado.mask(held_out))
    imp = imp.sel(celltype=SAMPLE_CELLTYPES, assay=SAMPLE_ASSAYS)
    pilot = pilot_annotations(ds)
    bed = pd.DataFrame(
        {
            "chrom": ["chr11", "chr20"],
            "start": [1_900_000, 34_100_000],
            "end": [2_000_000, 34_150_000],
        }
    )
    enhancer = enhancers(bed, ds)
    ann = {"promoter": pilot.promoter, "gene_body": pilot.gene_body, "enhancer": enhancer}
    scores = ax.evaluate(ds, imp, annotations=ann, **settings)
    assert list(scores.metric.values) == list(m.METRICS)
    fraction = settings.get("fraction", 0.01)
    catch_fraction = settings.get("catch_fraction", 0.05)
    threshold = settings.get("threshold", np.arcsinh(2.0))  # -log10 p = 2
    regions = {key: np.asarray(mask.values) for key, mask in ann.items()}
    table = []  # the expected values, one row per track
    for c in SAMPLE_CELLTYPES:
        for a in SAMPLE_ASSAYS:
            y = ds.signal.sel(celltype=c, assay=a).values.astype(np.float64)
            p = imp.imputed.sel(celltype=c, assay=a).values.astype(np.float64)
            # msevar: population variance over the cell types in which the assay is observed
            donors = ds.celltype.values[ds.observed.sel(assay=a).values]
            variance = ds.signal.sel(assay=a, celltype=donors).values.astype(np.float64).var(0)
            expected = _independent(y, p, variance, regions, fraction, catch_fraction, threshold)
            assert sorted(expected) == sorted(m.METRICS)
            got = scores.score.sel(celltype=c, assay=a)
            for name, value in expected.items():
                assert float(got.sel(metric=name)) == pytest.approx(value, rel=1e-9), (c, a, name)
            table.append([expected[name] for name in m.METRICS])
    # no two measures have the same expected values on every track, so a kernel computing
    # another measure (observed and imputed swapped, 1% and 5% exchanged...) cannot pass
    table = np.array(table)
    for i, j in zip(*np.triu_indices(len(m.METRICS), 1), strict=True):
        assert np.abs(table[:, i] - table[:, j]).max() > 1e-3, (m.METRICS[i], m.METRICS[j])
    # annotations="pilot": the same promoters and gene bodies, no enhancers
    shipped = ax.evaluate(ds, imp, annotations="pilot", metrics=["mseprom", "msegene", "mseenh"])
    np.testing.assert_allclose(
        shipped.score.sel(metric=["mseprom", "msegene"]),
        scores.score.sel(metric=["mseprom", "msegene"]),
        rtol=1e-12,
    )
    assert np.isnan(shipped.score.sel(metric="mseenh")).all()


def test_evaluate_undefined_tracks_are_nan_where_the_functions_raise(sample):
    imp = impute_average(sample).sel(celltype=SAMPLE_CELLTYPES, assay=SAMPLE_ASSAYS)
    imp.imputed[0, 0, 10] = np.nan  # one non-finite value: the whole track is undefined
    scores = ax.evaluate(sample, imp, annotations="pilot")
    assert np.isnan(scores.score.isel(celltype=0, assay=0)).all()
    assert np.isfinite(scores.score.isel(celltype=1, assay=1).drop_sel(metric="mseenh")).all()
    y = sample.signal.sel(celltype=SAMPLE_CELLTYPES[0], assay=SAMPLE_ASSAYS[0]).values
    with pytest.raises(MetricError, match="non-finite"):
        m.mse(y, imp.imputed.isel(celltype=0, assay=0).values)
    nothing = np.zeros(sample.sizes["position"], dtype=bool)
    assert np.isnan(ax.evaluate(sample, imp, mask=nothing).score).all()
    with pytest.raises(MetricError, match="No position"):
        m.mse(y, y, mask=nothing)
