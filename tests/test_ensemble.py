"""The stacked ensemble: what it learns from, what it never sees, and its imputations."""

from __future__ import annotations

import numpy as np
import pytest
from _helpers import raise_if_dask_computes
from hypothesis import given, settings
from hypothesis import strategies as st

import avocado_xr as ax
from avocado_xr.evaluation import crossval
from avocado_xr.evaluation.crossval import METHODS, Method, method_options
from avocado_xr.evaluation.ensemble import EnsembleModel, fit_ensemble
from avocado_xr.evaluation.least_squares import nnls
from avocado_xr.evaluation.quantiles import quantile_map, reference_quantiles
from avocado_xr.evaluation.stacking import (
    choose_kappa,
    group_weights,
    input_names,
    out_of_fold,
    peak_lift,
)
from avocado_xr.exceptions import ConfigError

TINY = {"epochs": 1, "n_layers": 1, "n_nodes": 16, "batch_size": 500, "device": "cpu"}
BASES = ("avocado", "average")


@pytest.fixture(scope="module")
def sim():
    """4 cell types x 3 assays, every track observed, 1,500 positions."""
    return ax.testing.simulate_compendium(
        n_celltypes=4, n_assays=3, n_positions=1_500, missing_frac=0.0, seed=3
    )


def _names(ds, folds, fold):
    return [
        (str(ds.celltype.values[c]), str(ds.assay.values[a]))
        for c, a in np.argwhere(folds.values == fold)
    ]


def _perturb(ds, track, factor=3.0):
    """``ds`` with one track's values changed (scaled and shifted)."""
    out = ds.copy(deep=True)
    sel = {"celltype": track[0], "assay": track[1]}
    out["signal"].loc[sel] = out["signal"].loc[sel] * factor + 0.5
    return out


def test_registered_and_options_by_kind():
    assert METHODS["ensemble"].kind == "ensemble"
    opts = method_options(
        factorization={"epochs": 2}, autoencoder={"n_windows": 5}, ensemble={"inner_k": 3}
    )
    assert opts["ensemble"] == {
        "factorization": {"epochs": 2},
        "autoencoder": {"n_windows": 5},
        "inner_k": 3,
    }
    opts["ensemble"]["factorization"]["epochs"] = 9  # copies, not shared dicts
    assert opts["avocado"] == {"epochs": 2}


def test_outer_held_out_values_never_change_the_weights(sim):
    """Cross-validate twice, the second time with one track's values changed: the fold that
    holds that track out learns exactly the same ensemble, the folds that train on it do not
    (so the comparison can fail)."""
    track = (str(sim.celltype.values[1]), str(sim.assay.values[2]))
    fitted = {}

    def spy(tag):
        def run(train, *, seed, **options):
            model = fit_ensemble(train, seed=seed, **options)
            fitted[(tag, seed)] = model
            return model

        return run

    options = {"bases": BASES, "inner_k": 2, "factorization": TINY}
    cv_a = ax.cross_validate(sim, k=3, method=spy("a"), seed=0, evaluate=False, **options)
    cv_b = ax.cross_validate(
        _perturb(sim, track), k=3, method=spy("b"), seed=0, evaluate=False, **options
    )
    fold = int(cv_a.fold.sel(celltype=track[0], assay=track[1]))
    for f in range(3):
        same = fitted[("a", f)].weights.equals(fitted[("b", f)].weights)
        assert same == (f == fold), f
    held = {"celltype": track[0], "assay": track[1]}
    np.testing.assert_array_equal(cv_a.imputed.sel(held), cv_b.imputed.sel(held))


def test_a_training_tracks_imputation_never_depends_on_its_own_values(sim):
    """The out-of-fold base imputations of a training track, which the combiner is fitted
    to, are unchanged when that track's values change; those of tracks in other inner folds
    (whose models trained on it) do change."""
    folds = ax.make_folds(sim, k=2, seed=0)
    track = _names(sim, folds, 0)[0]
    options = {"avocado": TINY, "average": {}}
    rows = np.arange(0, sim.sizes["position"], 3)
    names = input_names(BASES, (), quantiles=True)  # avocado, avocado~qn, average

    def collect(ds):
        inner = out_of_fold(ds, folds, BASES, seed=0, options=options, quantile_rows=rows)
        return {t: p for t, _, p in inner}

    before, after = collect(sim), collect(_perturb(sim, track))
    assert len(before[track]) == len(names) == 3
    for i in range(len(names)):
        np.testing.assert_array_equal(before[track][i], after[track][i])
    other_fold = [t for t in _names(sim, folds, 1) if t[1] == track[1] and t != track]
    for t in other_fold:
        for i, name in enumerate(names):
            assert not np.array_equal(before[t][i], after[t][i]), (t, name)


def test_regression_baselines_never_read_their_own_track_in_the_ensemble(sim):
    """The ``mixture`` and ``cross-assay`` bases impute a training track from the other
    tracks only (their imputations are taken from the whole training compendium, like the
    average's): unchanged when the track changes, changed for the tracks that read it."""
    folds = ax.make_folds(sim, k=2, seed=0)
    track = _names(sim, folds, 0)[0]
    bases = ("mixture", "cross-assay")

    def collect(ds):
        inner = out_of_fold(ds, folds, bases, seed=0, options={b: {} for b in bases})
        return {t: p for t, _, p in inner}

    before, after = collect(sim), collect(_perturb(sim, track))
    for i in range(len(bases)):
        np.testing.assert_array_equal(before[track][i], after[track][i])
    for i in range(len(bases)):  # other tracks read it: the comparison can fail
        assert any(not np.array_equal(before[t][i], after[t][i]) for t in before if t != track)


def test_inner_folds_never_use_an_outer_held_out_track(sim, monkeypatch):
    """Every fit inside the ensemble sees the outer held-out tracks as unobserved, all-NaN
    tracks; they are in no inner fold and feed no combiner row."""
    outer = ax.make_folds(sim, k=3, seed=0)
    held = _names(sim, outer, 0)
    seen = []

    def spy_fit(train, *, seed, **options):
        seen.append(train)
        return ax.fit(train, seed=seed, **options)

    monkeypatch.setitem(METHODS, "spy", Method(spy_fit, "factorization", "records its data"))
    model = fit_ensemble(
        ax.mask(sim, held), bases=("spy", "average"), inner_k=2, factorization=TINY
    )
    assert len(seen) == 2 + 1  # one fit per inner fold, one refit
    for train in seen:
        for c, a in held:
            assert not bool(train.observed.sel(celltype=c, assay=a))
            assert bool(train.signal.sel(celltype=c, assay=a).isnull().all())
    for c, a in held:
        assert int(model.inner_folds.sel(celltype=c, assay=a)) == -1
    assert int(model.weights.tracks.sum()) > 0


def test_impute_is_lazy_and_applies_the_combiner(sample, tmp_path):
    ax.save_compendium(sample.avocado.region("chr11:2,100,000-2,200,000"), tmp_path / "s.zarr")
    ds = ax.open_compendium(tmp_path / "s.zarr")
    train = ax.mask(ds, [("E065", "H3K4me3")])
    model = fit_ensemble(train, bases=BASES, inner_k=2, factorization=TINY)
    assert isinstance(model, EnsembleModel)
    assert model.inputs == ["avocado", "avocado~qn", "average"]
    assert list(model.models) == list(BASES)
    assert model.calibration is not None
    with raise_if_dask_computes():
        out = model.impute(train, celltypes=["E065"], assays=["H3K4me3", "H3K27me3"], merge=False)
    assert hasattr(out.imputed.data, "chunks") and out.attrs["method"] == "ensemble"
    sel = {"celltype": "E065", "assay": "H3K4me3"}
    w = model.weights.sel(sel)
    parts = {
        name: m.impute(train, celltypes=["E065"], assays=["H3K4me3"], merge=False).imputed.sel(sel)
        for name, m in model.models.items()
    }
    tables = model.quantiles.sel(sel)
    source = tables.source.sel(input="avocado").values
    parts["avocado~qn"] = quantile_map(parts["avocado"], source, tables.reference.values)
    combined = float(w.intercept) + sum(
        float(w.coef.sel(input=name)) * parts[name] for name in model.inputs
    )
    plain = model.uncalibrated().impute(train, celltypes="E065", assays="H3K4me3", merge=False)
    np.testing.assert_allclose(plain.imputed.sel(sel), combined, rtol=1e-5, atol=1e-5)
    lifted = peak_lift(combined.values, model.calibration["kappa"], model.calibration["threshold"])
    np.testing.assert_allclose(out.imputed.sel(sel), lifted, rtol=1e-5, atol=1e-5)
    assert (model.weights.coef.values >= 0).all()  # non-negative least squares


def test_snapshots_are_the_same_training_run(sim):
    """``avocado@1`` is the model a one-epoch fit gives, ``avocado`` the two-epoch one."""
    options = {**TINY, "epochs": 2}
    model = fit_ensemble(sim, bases=BASES, inner_k=2, snapshots=[1, 2, 5], factorization=options)
    assert model.inputs == ["avocado@1", "avocado", "avocado@1~qn", "avocado~qn", "average"]
    assert model.weights.sizes["input"] == 5
    for epochs, name in ((1, "avocado@1"), (2, "avocado")):
        alone = ax.fit(sim, seed=0, **{**options, "epochs": epochs})
        np.testing.assert_array_equal(
            model.models[name].predict("C0", "A1"), alone.predict("C0", "A1")
        )
    with pytest.raises(ConfigError, match="inner_epochs"):
        fit_ensemble(sim, snapshots=[1], inner_epochs=1, factorization=options)


def _sse(p, y):
    return float(np.sum((p - y) ** 2))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), share=st.sampled_from([0.0, 0.25, 0.5, 1.0]))
def test_peak_calibration_spends_at_most_its_share_of_each_gain(seed, share):
    """The lift keeps ranks, and the chosen kappa spends at most ``share`` of every track's
    gain over its reference while one step lower would overspend on some track; tracks
    without a gain bound nothing."""
    values = np.linspace(0.0, 3.0, 301)
    lifted = peak_lift(values, 1.0, 1.44)
    assert (np.diff(lifted) > 0).all()  # strictly increasing: ranks are unchanged
    assert (lifted[values < 1.0] == values[values < 1.0]).all()
    assert (lifted[(values >= 1.0) & (values < 1.44)] >= 1.44).all()
    rng = np.random.default_rng(seed)
    tracks = []
    for _ in range(3):
        y = np.arcsinh(rng.exponential(1.0, 400) * rng.random(400) * 5)
        p = 0.7 * y + 0.3 * y.mean() + rng.normal(0, 0.2, 400)  # shrunk towards the mean
        tracks.append((p, y, y.mean() + rng.normal(0, 0.6, 400)))  # a noisier reference
    threshold = 1.44
    kappa = choose_kappa(tracks, threshold, share)
    gained = [(p, y, _sse(p, y), _sse(r, y) - _sse(p, y)) for p, y, r in tracks]
    gained = [t for t in gained if t[3] > 0]

    def within(k):
        return all(_sse(peak_lift(p, k, threshold), y) <= e + share * g for p, y, e, g in gained)

    lowest = threshold - 0.01 * (int(threshold / 0.01) - 1)
    if kappa is None:
        assert not gained or not within(threshold - 0.01)
    else:
        assert within(kappa) and (kappa - 0.01 < lowest or not within(kappa - 0.01))
    loser = (tracks[0][1].mean() + np.zeros(400), tracks[0][1], tracks[0][1])  # no gain
    assert choose_kappa([*tracks, loser], threshold, share) == kappa
    assert choose_kappa([loser], threshold, share) is None


def test_peak_calibration_in_the_fit(sim):
    model = fit_ensemble(sim, bases=("average", "mean"), inner_k=2)
    assert model.calibration is not None and model.info["peak_budget"] == 0.5
    assert model.info["inner_mse_calibrated"] >= model.info["inner_mse"]  # paid for recall
    off = fit_ensemble(sim, bases=("average", "mean"), inner_k=2, peak_budget=None)
    assert off.calibration is None and off.weights.equals(model.weights)
    assert off.info["inner_mse_calibrated"] == off.info["inner_mse"]
    tight = fit_ensemble(sim, bases=("average", "mean"), inner_k=2, peak_budget=0.0)
    assert tight.calibration is None or tight.calibration["kappa"] >= model.calibration["kappa"]


def test_anchor_pulls_the_combiner_towards_the_reference():
    """The penalised distance to the reference alone shrinks as the anchor grows, down to
    the reference alone; 0 is the free fit."""
    rng = np.random.default_rng(1)
    grams = {}
    for c in "AB":
        x = np.column_stack([np.ones(300), rng.normal(size=(300, 2))])
        y = 0.2 * x[:, 1] + 0.9 * x[:, 2] + 0.1 * rng.normal(size=300)
        grams[c, "a"] = (x.T @ x, x.T @ y)
    names, pooled = ["average", "model"], sum(g for g, _ in grams.values())

    def fit(anchor):
        w = group_weights(
            grams, ["A"], ["a"], names, scope="global", anchor=anchor, reference=names[0]
        )
        return w.coef.sel(celltype="A", assay="a").values

    distances = [np.diag(pooled)[1:] @ (fit(a) - [1.0, 0.0]) ** 2 for a in (0.01, 0.1, 1.0, 10.0)]
    assert (np.diff(distances) < 0).all()
    np.testing.assert_allclose(fit(1e9), [1.0, 0.0], atol=1e-6)
    free = group_weights(grams, ["A"], ["a"], names, scope="global")
    np.testing.assert_array_equal(fit(0.0), free.coef.sel(celltype="A", assay="a").values)
    with pytest.raises(ConfigError, match="reference"):
        group_weights(grams, ["A"], ["a"], names, anchor=0.1, reference="mean")


def test_anchor_in_the_fit(sim):
    """On by default; it costs inner fit (one global least-squares fit: exactly)."""
    options = {"bases": ("average", "mean"), "inner_k": 2, "scope": "global", "peak_budget": None}
    anchored, free = fit_ensemble(sim, **options), fit_ensemble(sim, **options, anchor=0.0)
    assert anchored.info["anchor"] == anchored.weights.attrs["anchor"] == 0.3
    assert not anchored.weights.coef.equals(free.weights.coef)
    assert anchored.info["inner_mse"] > free.info["inner_mse"]


@pytest.mark.parametrize(
    ("bases", "reference"),
    [(("average", "average-w9", "mean"), "average-w9"), (("mean", "average"), "average")],
)
def test_anchor_reference_is_the_smoothed_average_if_a_base(sim, bases, reference):
    """The anchor pulls towards the smoothed average alone, else the average alone: with a
    huge anchor the weights are those of the reference."""
    model = fit_ensemble(sim, bases=bases, inner_k=2, scope="global", anchor=1e9)
    assert model.info["anchor_reference"] == reference
    coef = model.weights.coef.isel(celltype=0, assay=0)
    np.testing.assert_allclose(coef, (coef.input == reference).astype(float), atol=1e-4)


def test_quantile_inputs_keep_ranks_and_never_read_their_track(sim):
    """A track's reference distribution comes from the same assay in the other cell types
    only; the map keeps ranks and lands inside the reference's range."""
    rows = np.arange(sim.sizes["position"])
    ref = reference_quantiles(sim, rows)
    same = reference_quantiles(_perturb(sim, ("C1", "A2")), rows)
    np.testing.assert_array_equal(ref[1, 2], same[1, 2])  # its own values: no effect
    assert not np.array_equal(ref[0, 2], same[0, 2])  # another cell type's reference: changed
    np.testing.assert_array_equal(ref[:, :2], same[:, :2])  # other assays: unchanged
    values = np.random.default_rng(0).normal(size=2_000) * 5.0
    mapped = quantile_map(values, np.quantile(values, np.linspace(0, 1, 101)), ref[1, 2, ::10])
    order = np.argsort(values)
    assert (np.diff(mapped[order]) >= 0).all()
    assert ref[1, 2].min() <= mapped.min() and mapped.max() <= ref[1, 2].max()
    unobserved = sim.copy(deep=True)
    unobserved["observed"].loc[{"assay": "A0"}] = False
    unobserved["observed"].loc[{"celltype": "C0", "assay": "A0"}] = True
    assert np.isnan(reference_quantiles(unobserved, rows)[0, 0]).all()  # no other cell type
    np.testing.assert_array_equal(quantile_map(values, ref[1, 2], np.full(1001, np.nan)), values)


def test_cross_validate_with_the_ensemble(sample):
    ds = sample.avocado.region("chr11:2,100,000-2,300,000")
    cv = ax.cross_validate(
        ds, k=3, method="ensemble", inner_k=2, bases=BASES, factorization=TINY, seed=1
    )
    assert cv.attrs["method"] == "ensemble"
    scores = cv.score.sel(metric=["mse", "gwcorr"]).values
    assert np.isfinite(scores).all()


def test_solver_constraints():
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(500), rng.normal(size=(500, 2))])
    y = 0.3 + 2.0 * x[:, 1] - 1.0 * x[:, 2] + 0.01 * rng.normal(size=500)
    w = nnls(x.T @ x, x.T @ y)
    assert w[2] == pytest.approx(0.0, abs=1e-9) and w[1] > 1.5  # clipped at zero
    y = -0.7 + 2.0 * x[:, 1] + 1.0 * x[:, 2]  # feasible: recovered, negative intercept too
    np.testing.assert_allclose(nnls(x.T @ x, x.T @ y), [-0.7, 2.0, 1.0], atol=1e-6)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"bases": ("ensemble",)}, "bases"),
        ({"bases": ("average", "average")}, "bases"),
        ({"bases": ("chromimpute",)}, "bases"),
        ({"inner_k": 1}, "inner_k"),
        ({"scope": "track"}, "scope"),
        ({"shrinkage": -1.0}, "shrinkage"),
        ({"peak_budget": 1.5}, "peak_budget"),
        ({"bases": ("mean", "linear")}, "average"),  # the calibration measures gains from it
        ({"anchor": -0.1}, "anchor"),
        ({"anchor": float("nan")}, "anchor"),
        ({"bases": ("mean", "linear"), "peak_budget": None}, "anchor"),  # pulls towards it
    ],
)
def test_bad_settings(sim, options, match):
    with pytest.raises(ConfigError, match=match):
        fit_ensemble(sim, **options)


def test_registry_reaches_the_command_line():
    from avocado_xr.cli import main

    with pytest.raises(SystemExit):
        main(["evaluate", "sample", "--methods", "ensembel"])
    assert "ensemble" in crossval.METHODS


def test_save_and_load_imputes_the_same(sim, tmp_path):
    """A saved ensemble (Avocado snapshots, their quantile copies, the average) loads into one
    that imputes the same; a tampered array file or a base directory outside is refused."""
    from avocado_xr.exceptions import ModelFileError

    train = ax.mask(sim, [("C1", "A2")])
    model = fit_ensemble(
        train, bases=BASES, inner_k=2, factorization={**TINY, "epochs": 2}, snapshots=[1]
    )
    model.save(tmp_path / "ens")
    with pytest.raises(ModelFileError, match="overwrite"):
        model.save(tmp_path / "ens")
    back = EnsembleModel.load(tmp_path / "ens")
    assert back.inputs == model.inputs and back.calibration == model.calibration
    assert back.weights.equals(model.weights) and back.quantiles.equals(model.quantiles)
    assert back.inner_folds.equals(model.inner_folds)
    before = model.impute(train, merge=False).imputed.values
    np.testing.assert_allclose(back.impute(train, merge=False).imputed.values, before, atol=1e-6)
    meta = (tmp_path / "ens" / "ensemble.json").read_text()
    (tmp_path / "ens" / "ensemble.json").write_text(meta.replace('"models/0"', '"../../x"'))
    with pytest.raises(ModelFileError, match="outside"):
        EnsembleModel.load(tmp_path / "ens")
    arrays = tmp_path / "ens" / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ModelFileError, match="SHA-256"):
        EnsembleModel.load(tmp_path / "ens")
    with pytest.raises(ModelFileError, match="not a saved avocado_xr ensemble"):
        EnsembleModel.load(tmp_path)
