"""The pieces of the stacked ensemble (:mod:`.ensemble`).

- :func:`out_of_fold`: the inner cross-validation, the out-of-fold imputations of training
  tracks by each base method (:func:`fit_base` fits one, with its snapshots;
  :func:`input_names` names the combiner's inputs).
- :func:`group_weights`: one combiner per (cell type, assay), an intercept plus non-negative
  weights (Breiman, "Stacked regressions", *Machine Learning* 24, 1996; solved by
  :func:`.least_squares.nnls` from the normal equations, so that tracks can be accumulated
  one at a time), fitted to the rows of a group of training tracks (same cell type, same
  assay, or all), shrunk towards the pooled fit and, with ``anchor``, towards a reference
  input alone.
- :func:`peak_lift` and :func:`choose_kappa`: the peak calibration, a strictly increasing map
  that lifts imputed values from ``kappa`` up to the peak threshold onto it, and the lowest
  ``kappa`` that spends at most a share of each track's gain over a reference imputation.
- :func:`normal_equations` and :func:`combine`: the combiner's data, track by track.
- :func:`quantile_tables`: the maps of the quantile-normalized inputs
  (:mod:`.quantiles`).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import xarray as xr

from ..compendium import mask
from ..exceptions import ConfigError
from ..variables import DIM_ASSAY, DIM_CELLTYPE, DIM_POSITION, IMPUTED, SIGNAL
from .crossval import METHODS
from .least_squares import nnls
from .quantiles import DIM_QUANTILE, QUANTILE_SUFFIX, QUANTILES, quantile_map, reference_quantiles

__all__ = [
    "ANCHOR_REFERENCES",
    "DIM_INPUT",
    "LIFT_WIDTH",
    "REFERENCE",
    "SCOPES",
    "anchor_reference",
    "check_settings",
    "choose_kappa",
    "combine",
    "fit_base",
    "group_weights",
    "inner_settings",
    "input_names",
    "normal_equations",
    "out_of_fold",
    "peak_lift",
    "quantile_tables",
]

#: the dimension of the combiner's inputs (one per base imputation)
DIM_INPUT = "input"
#: which training tracks a track's weights are fitted to (see :func:`group_weights`)
SCOPES = ("celltype", "assay", "global")
#: width of the band just above the peak threshold that lifted values are mapped onto
LIFT_WIDTH = 0.01
#: the peak calibration's budget is measured from this input's squared error
REFERENCE = "average"
#: the input the combiner's anchor pulls the weights towards: the first of these in the bases
ANCHOR_REFERENCES = ("average-w9", REFERENCE)


def group_weights(
    grams: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    celltypes: Sequence[str],
    assays: Sequence[str],
    names: Sequence[str],
    *,
    scope: str = "celltype",
    shrinkage: float = 1.0,
    anchor: float = 0.0,
    reference: str | None = None,
) -> xr.Dataset:
    """The combiner of every (cell type, assay), from the normal equations of tracks.

    A track's combiner is fitted to the rows of the tracks of its group (same cell type for
    ``scope="celltype"``, same assay for ``"assay"``) plus the rows of all tracks,
    down-weighted to ``shrinkage`` times the group's share of them; ``"global"`` fits one
    combiner to all rows. A group without tracks gets the pooled combiner. ``anchor`` adds
    the ridge penalty ``anchor * sum_i (X'X)_ii (w_i - r_i)^2``, ``r`` the weights of the
    ``reference`` input alone, so that inputs are trusted over it only as far as the rows
    say (a prior towards a strong baseline).

    Parameters
    ----------
    grams : mapping
        ``(celltype, assay) -> (X'X, X'y)`` of each track (column 0 of ``X`` the intercept).
    celltypes, assays : sequence of str
        The tracks to give weights to.
    names : sequence of str
        Names of the inputs (columns 1.. of ``X``).
    scope : {"celltype", "assay", "global"}
        Default is "celltype".
    shrinkage : float
        Weight of the pooled rows relative to the group's own share. Default is 1.0.
    anchor : float
        Strength of the pull towards ``reference`` alone, relative to each input's sum of
        squares. Default is 0 (none).
    reference : str, optional
        The input the anchor pulls towards; needed when ``anchor > 0``.

    Returns
    -------
    xarray.Dataset
        ``coef`` (celltype, assay, input), ``intercept`` (celltype, assay) and ``tracks``
        (celltype, assay): the number of tracks in the group.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> def track(w):
    ...     x = np.column_stack([np.ones(100), rng.random((100, 2))])
    ...     y = x @ np.r_[0.0, w]
    ...     return x.T @ x, x.T @ y
    >>> grams = {("A", "a"): track([1.0, 0.0]), ("B", "a"): track([0.0, 1.0])}
    >>> w = group_weights(grams, ["A", "B"], ["a"], ["x", "z"], scope="celltype", shrinkage=0)
    >>> w.coef.sel(assay="a").round(3).values.tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    pooled_gram = sum(g for g, _ in grams.values())
    pooled_rhs = sum(r for _, r in grams.values())
    prior = np.zeros(len(names) + 1)
    if anchor:
        if reference not in names:
            raise ConfigError(f"The anchor's reference {reference!r} is not an input: {names}.")
        prior[1 + list(names).index(reference)] = 1.0

    def solve(gram, rhs):
        penalty = anchor * np.diag(np.r_[0.0, np.diag(gram)[1:]])
        return nnls(gram + penalty, rhs + penalty @ prior)

    coef = np.zeros((len(celltypes), len(assays), len(names)))
    intercept = np.zeros((len(celltypes), len(assays)))
    n_tracks = np.zeros((len(celltypes), len(assays)), dtype=np.int64)
    solved: dict = {}
    for i, c in enumerate(celltypes):
        for j, a in enumerate(assays):
            key = {"global": None, "celltype": c, "assay": a}[scope]
            if key not in solved:
                axis = 0 if scope == "celltype" else 1
                group = [t for t in grams if key is None or t[axis] == key]
                if group and key is not None:
                    share = shrinkage * len(group) / len(grams)
                    gram = sum((grams[t][0] for t in group), share * pooled_gram)
                    rhs = sum((grams[t][1] for t in group), share * pooled_rhs)
                else:  # global, or no track in the group: the pooled fit
                    gram, rhs = pooled_gram, pooled_rhs
                solved[key] = (solve(gram, rhs), len(group))
            w, n = solved[key]
            intercept[i, j], coef[i, j], n_tracks[i, j] = w[0], w[1:], n
    return xr.Dataset(
        {
            "coef": ((DIM_CELLTYPE, DIM_ASSAY, DIM_INPUT), coef),
            "intercept": ((DIM_CELLTYPE, DIM_ASSAY), intercept),
            "tracks": ((DIM_CELLTYPE, DIM_ASSAY), n_tracks),
        },
        coords={
            DIM_CELLTYPE: np.asarray(celltypes, dtype=object),
            DIM_ASSAY: np.asarray(assays, dtype=object),
            DIM_INPUT: np.asarray(names, dtype=object),
        },
        attrs={"scope": scope, "shrinkage": shrinkage, "anchor": anchor},
    )


def peak_lift(values, kappa: float, threshold: float):
    """The peak calibration: ``[kappa, threshold)`` onto ``[threshold, threshold + 0.01)``,
    values from ``threshold`` up shifted by 0.01, the rest unchanged.

    The map is strictly increasing, so it leaves every rank-based measure unchanged. Works on
    NumPy arrays and (Dask-backed) DataArrays.

    Examples
    --------
    >>> peak_lift(np.array([0.5, 1.0, 1.2, 1.5]), 1.0, 1.4)
    array([0.5  , 1.4  , 1.405, 1.51 ])
    """
    band = threshold + LIFT_WIDTH * (values - kappa) / (threshold - kappa)
    where = np.where if isinstance(values, np.ndarray) else xr.where
    return where(values >= threshold, values + LIFT_WIDTH, where(values >= kappa, band, values))


def choose_kappa(tracks, threshold: float, share: float) -> float | None:
    """The lowest ``kappa`` whose :func:`peak_lift` spends at most ``share`` of each track's
    gain over its reference.

    A track's gain is how much lower the squared error of its combination is than that of
    its reference imputation (in :func:`~.ensemble.fit_ensemble`, the average baseline); the
    lift may raise its squared error by at most ``share`` times that. Tracks without a gain
    (already no better than the reference) do not bound the lift. ``kappa`` steps down from
    the threshold by 0.01 and stops at the first step over any track's bound; None when
    even the first is, or when no track has a gain.

    Parameters
    ----------
    tracks : iterable of (combined, target, reference)
        Arrays of the same length per track: the combination, the observed signal and the
        reference imputation.
    threshold : float
        The peak threshold.
    share : float
        In [0, 1]: 0 allows only lifts that lower each track's squared error.

    Examples
    --------
    >>> y = np.r_[np.zeros(90), np.full(10, 2.0)]  # 10 peaks
    >>> p = np.r_[np.zeros(80), np.full(10, 1.0), np.full(10, 1.2)]  # imputed too low
    >>> tracks = [(p, y, np.zeros(100))]  # the reference misses every peak: a large gain
    >>> choose_kappa(tracks, 1.44, 0.0)  # lifting the peaks lowers the error, the rest not
    1.01
    >>> choose_kappa(tracks, 1.44, 0.5)  # half the gain pays for lifting the false 1.0s too
    0.01
    """
    bounded = []
    for combined, target, reference in tracks:
        sse = float(np.sum((combined - target) ** 2))
        gain = float(np.sum((reference - target) ** 2)) - sse
        if gain > 0:
            bounded.append((combined, target, sse + share * gain))
    if not bounded:
        return None
    best = None
    for kappa in threshold - 0.01 * np.arange(1, int(threshold / 0.01)):
        for combined, target, bound in bounded:
            if float(np.sum((peak_lift(combined, kappa, threshold) - target) ** 2)) > bound:
                return best
        best = round(float(kappa), 6)
    return best


def normal_equations(inner, rows: np.ndarray) -> tuple[dict, dict]:
    """The combiner's data from :func:`out_of_fold`'s tracks: ``track -> (X'X, X'y)`` (column
    0 of ``X`` the intercept, then the inputs) and ``track -> (X, y)`` at positions ``rows``;
    one track in memory at a time."""
    grams, kept = {}, {}
    for track, target, predictions in inner:
        x = np.column_stack([np.ones_like(target), *predictions])
        grams[track] = (x.T @ x, x.T @ target)
        kept[track] = (x[rows], target[rows])
    return grams, kept


def combine(weights: xr.Dataset, kept: Mapping, reference: str | None = None) -> dict:
    """``track -> (combination, target, input reference)`` of each kept track (see
    :func:`normal_equations`), with the track's own combiner of ``weights``; the third is
    None without a ``reference``."""
    column = None if reference is None else 1 + list(weights.get_index(DIM_INPUT)).index(reference)
    out = {}
    for (c, a), (x, y) in kept.items():
        w = weights.sel({DIM_CELLTYPE: c, DIM_ASSAY: a})
        combined = x @ np.r_[float(w["intercept"]), w["coef"].values]
        out[c, a] = (combined, y, None if column is None else x[:, column])
    return out


def quantile_tables(models: dict, train: xr.Dataset, rows: np.ndarray, names) -> xr.Dataset | None:
    """The quantile maps of the ``~qn`` inputs: each model's imputation of every track of
    ``train`` at positions ``rows`` (computed here, once), and the reference quantiles; None
    when no input has a copy."""
    raw = [n.removesuffix(QUANTILE_SUFFIX) for n in names if n.endswith(QUANTILE_SUFFIX)]
    if not raw:
        return None
    subset = train.isel({DIM_POSITION: rows})
    source = np.stack(
        [
            np.quantile(
                np.asarray(models[n].impute(subset, merge=False)[IMPUTED].values, np.float64),
                QUANTILES,
                axis=-1,
            )
            for n in raw
        ],
        axis=-1,
    )  # (quantile, celltype, assay, input)
    dims = (DIM_CELLTYPE, DIM_ASSAY)
    return xr.Dataset(
        {
            "source": ((*dims, DIM_INPUT, DIM_QUANTILE), np.moveaxis(source, 0, -1)),
            "reference": ((*dims, DIM_QUANTILE), reference_quantiles(train, rows)),
        },
        coords={
            DIM_CELLTYPE: train.get_index(DIM_CELLTYPE),
            DIM_ASSAY: train.get_index(DIM_ASSAY),
            DIM_INPUT: np.asarray(raw, dtype=object),
            DIM_QUANTILE: QUANTILES,
        },
    )


def check_settings(bases, scope, shrinkage, inner_k, peak_budget, anchor=0.0) -> None:
    """Raise :class:`~avocado_xr.exceptions.ConfigError` for settings of
    :func:`~.ensemble.fit_ensemble` it cannot use."""
    usable = [m for m in METHODS if METHODS[m].kind != "ensemble"]
    if not bases or len(set(bases)) != len(bases) or any(b not in usable for b in bases):
        raise ConfigError(f"bases must be distinct names from {usable}; got {list(bases)}.")
    if scope not in SCOPES:
        raise ConfigError(f"scope must be one of {SCOPES}, got {scope!r}.")
    if shrinkage < 0:
        raise ConfigError(f"shrinkage must be >= 0, got {shrinkage}.")
    if isinstance(inner_k, bool) or not isinstance(inner_k, int) or inner_k < 2:
        raise ConfigError(f"inner_k must be an integer >= 2, got {inner_k!r}.")
    if peak_budget is not None and not 0 <= peak_budget <= 1:
        raise ConfigError(f"peak_budget must be in [0, 1] or None, got {peak_budget!r}.")
    if peak_budget is not None and REFERENCE not in bases:
        raise ConfigError(
            f"The peak calibration's budget is a share of each track's gain over the "
            f"{REFERENCE!r} baseline: add it to bases, or pass peak_budget=None."
        )
    if not anchor >= 0:  # NaN too
        raise ConfigError(f"anchor must be >= 0, got {anchor!r}.")
    if anchor and anchor_reference(bases) is None:
        raise ConfigError(
            f"The anchor pulls the combiner towards one of {ANCHOR_REFERENCES} alone: add one "
            "to bases, or pass anchor=0."
        )


def anchor_reference(bases: Sequence[str]) -> str | None:
    """The input the anchor pulls towards: the first of :data:`ANCHOR_REFERENCES` in
    ``bases`` (the smoothed average, else the average), or None."""
    return next((name for name in ANCHOR_REFERENCES if name in bases), None)


def inner_settings(options: dict, inner_epochs: int | None, snapshots: Sequence[int]) -> dict:
    """The base methods' options for the inner fits: ``inner_epochs`` for the factorization
    bases, if given (it must exceed every kept snapshot)."""
    inner = copy.deepcopy(options)
    if inner_epochs is None:
        return inner
    if snapshots and inner_epochs <= max(snapshots):
        raise ConfigError(
            f"inner_epochs ({inner_epochs}) must exceed every snapshot kept ({list(snapshots)})."
        )
    for name in inner:
        if METHODS[name].kind == "factorization":
            inner[name]["epochs"] = inner_epochs
    return inner


def fit_base(
    name: str, train: xr.Dataset, seed: int, options: dict, snapshots: Sequence[int]
) -> dict:
    """The fitted model(s) of one base method by input name: one training run of a
    factorization method gives a model per snapshot epoch (resumed from a checkpoint)."""
    method = METHODS[name]
    if method.kind != "factorization" or not snapshots:
        return {name: method.fit(train, seed=seed, **options)}
    out = {}
    with tempfile.TemporaryDirectory(prefix="avocado-xr-ensemble-") as checkpoint:
        for epochs in snapshots:
            out[f"{name}@{epochs}"] = method.fit(
                train, seed=seed, **{**options, "epochs": epochs, "checkpoint": checkpoint}
            )
        out[name] = method.fit(train, seed=seed, **{**options, "checkpoint": checkpoint})
    return out


def _impute_tracks(models: dict, ds: xr.Dataset, tracks) -> dict[str, dict]:
    """float64 imputations of each (celltype, assay) of ``tracks`` by each model, computed."""
    out: dict[str, dict] = {}
    for name, model in models.items():
        out[name] = {}
        for c, a in tracks:
            part = model.impute(ds, celltypes=[c], assays=[a], merge=False)[IMPUTED]
            out[name][(c, a)] = np.asarray(part.values, dtype=np.float64).reshape(-1)
    return out


def out_of_fold(
    train: xr.Dataset,
    folds: xr.DataArray,
    bases: Sequence[str],
    *,
    seed: int,
    options: dict[str, dict],
    snapshots: Sequence[int] = (),
    quantile_rows: np.ndarray | None = None,
    verbose: bool = False,
) -> Iterator[tuple[tuple[str, str], np.ndarray, list[np.ndarray]]]:
    """Yield ``((celltype, assay), observed, [imputation of each input])`` for every training
    track of an inner fold (float64 arrays, inputs in :func:`input_names`'s order), one fold at
    a time.

    Each imputation comes from a model fitted on ``train`` with the track's inner fold also
    hidden (seed ``seed + 1000 * (fold + 1)``), or, for the methods of kind ``"baseline"``
    (nothing fitted), from ``train`` itself: they never read the track they impute.
    ``options`` holds each base method's options by name. With ``quantile_rows``, each
    factorization input also gets its quantile-normalized copy (:func:`quantile_map`; the
    quantiles taken at those positions, the reference from the fold's training tracks).
    """
    celltypes = [str(c) for c in train.get_index(DIM_CELLTYPE)]
    assays = [str(a) for a in train.get_index(DIM_ASSAY)]
    names = input_names(bases, snapshots, quantile_rows is not None)
    for f in range(int(folds.max()) + 1):
        held = [(celltypes[c], assays[a]) for c, a in np.argwhere(folds.values == f)]
        if not held:
            continue
        inner = mask(train, held)
        predictions: dict[str, dict] = {}
        for name in bases:
            if METHODS[name].kind == "baseline":
                models, source = fit_base(name, train, seed, {}, ()), train
            else:
                fold_seed = seed + 1000 * (f + 1)
                models = fit_base(name, inner, fold_seed, options[name], snapshots)
                source = inner
            imputed = _impute_tracks(models, source, held)
            predictions.update(imputed)
            if quantile_rows is not None and METHODS[name].kind == "factorization":
                reference = reference_quantiles(inner, quantile_rows)
                for key, tracks in imputed.items():
                    predictions[key + QUANTILE_SUFFIX] = {
                        (c, a): quantile_map(
                            p,
                            np.quantile(p[quantile_rows], QUANTILES),
                            reference[celltypes.index(c), assays.index(a)],
                        )
                        for (c, a), p in tracks.items()
                    }
            if verbose:
                print(f"ensemble: inner fold {f + 1}, {name} fitted", flush=True)
        for c, a in held:
            target = np.asarray(
                train[SIGNAL].sel({DIM_CELLTYPE: c, DIM_ASSAY: a}).values, dtype=np.float64
            )
            yield (c, a), target, [predictions[n][(c, a)] for n in names]


def input_names(bases: Sequence[str], snapshots: Sequence[int], quantiles: bool = False):
    """The combiner's inputs: per base, its snapshots and itself, then (``quantiles``, for
    factorization bases) their quantile-normalized copies."""
    names = []
    for name in bases:
        own = [f"{name}@{e}" for e in snapshots] if METHODS[name].kind == "factorization" else []
        own.append(name)
        if quantiles and METHODS[name].kind == "factorization":
            own += [n + QUANTILE_SUFFIX for n in own]
        names += own
    return names
