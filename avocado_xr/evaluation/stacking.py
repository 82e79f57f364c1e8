"""The pieces of the stacked ensemble (:mod:`.ensemble`).

- :func:`out_of_fold`: the inner cross-validation, the out-of-fold imputations of training
  tracks by each base method (:func:`fit_base` fits one, with its snapshots;
  :func:`input_names` names the combiner's inputs).
- :func:`nnls`: an intercept plus non-negative weights (Breiman, "Stacked regressions",
  *Machine Learning* 24, 1996), from the normal equations, so that tracks can be accumulated
  one at a time.
- :func:`group_weights`: one combiner per (cell type, assay), fitted to the rows of a group of
  training tracks (same cell type, same assay, or all), shrunk towards the pooled fit.
- :func:`peak_lift` and :func:`choose_kappa`: the peak calibration, a strictly increasing map
  that lifts imputed values from ``kappa`` up to the peak threshold onto it, and the lowest
  ``kappa`` that a squared-error budget allows.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import xarray as xr

from ..compendium import mask
from ..variables import DIM_ASSAY, DIM_CELLTYPE, IMPUTED, SIGNAL
from .crossval import METHODS

__all__ = [
    "DIM_INPUT",
    "LIFT_WIDTH",
    "SCOPES",
    "choose_kappa",
    "fit_base",
    "group_weights",
    "input_names",
    "nnls",
    "out_of_fold",
    "peak_lift",
]

#: the dimension of the combiner's inputs (one per base imputation)
DIM_INPUT = "input"
#: which training tracks a track's weights are fitted to (see :func:`group_weights`)
SCOPES = ("celltype", "assay", "global")
#: width of the band just above the peak threshold that lifted values are mapped onto
LIFT_WIDTH = 0.01


def nnls(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Least squares with non-negative weights from the normal equations ``X'X`` and ``X'y``.

    Column 0 of ``X`` is the intercept: it is neither constrained nor penalised. The columns
    are standardised first, for conditioning.

    Parameters
    ----------
    gram : numpy.ndarray
        ``X'X``, (n, n).
    rhs : numpy.ndarray
        ``X'y``, (n,).

    Returns
    -------
    numpy.ndarray
        (n,): the intercept, then the weights (>= 0).

    Examples
    --------
    >>> x = np.column_stack([np.ones(5), [0.0, 1, 2, 3, 4], [1.0, 0, 2, 1, 3]])
    >>> nnls(x.T @ x, x.T @ (1.0 + 2.0 * x[:, 1] + 0.5 * x[:, 2])).round(3)
    array([1. , 2. , 0.5])
    >>> nnls(x.T @ x, x.T @ (1.0 + 2.0 * x[:, 1] - 0.5 * x[:, 2])).round(3)  # not < 0
    array([0.8 , 1.75, 0.  ])
    """
    from scipy.optimize import lsq_linear

    n = len(gram)
    scale = np.sqrt(np.maximum(np.diag(gram), 1e-12))
    g = gram / np.outer(scale, scale)
    r = rhs / scale
    # min |X w - y|^2 over w[1:] >= 0 equals min |L' w - L^-1 X'y|^2 with X'X = L L'
    chol = np.linalg.cholesky(g + 1e-10 * np.eye(n))
    lower = np.r_[-np.inf, np.zeros(n - 1)]
    fit = lsq_linear(chol.T, np.linalg.solve(chol, r), bounds=(lower, np.full(n, np.inf)))
    return fit.x / scale


def group_weights(
    grams: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray]],
    celltypes: Sequence[str],
    assays: Sequence[str],
    names: Sequence[str],
    *,
    scope: str = "celltype",
    shrinkage: float = 1.0,
) -> xr.Dataset:
    """The combiner of every (cell type, assay), from the normal equations of tracks.

    A track's combiner is fitted to the rows of the tracks of its group (same cell type for
    ``scope="celltype"``, same assay for ``"assay"``) plus the rows of all tracks,
    down-weighted to ``shrinkage`` times the group's share of them; ``"global"`` fits one
    combiner to all rows. A group without tracks gets the pooled combiner.

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
                solved[key] = (nnls(gram, rhs), len(group))
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
        attrs={"scope": scope, "shrinkage": shrinkage},
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


def choose_kappa(
    combined: np.ndarray, target: np.ndarray, threshold: float, budget: float
) -> float | None:
    """The lowest ``kappa`` whose :func:`peak_lift` raises the squared error of ``combined``
    (against ``target``) by at most ``budget`` (a fraction).

    ``kappa`` steps down from the threshold by 0.01 and stops at the first step over the
    budget; None when even the first is.

    Examples
    --------
    >>> y = np.r_[np.zeros(90), np.full(10, 2.0)]  # 10 peaks
    >>> p = np.r_[np.zeros(80), np.full(10, 1.0), np.full(10, 1.2)]  # imputed too low
    >>> choose_kappa(p, y, 1.44, 0.0)  # lifting the peaks lowers the error, the rest not
    1.01
    """
    sse = float(np.sum((combined - target) ** 2))
    best = None
    for kappa in threshold - 0.01 * np.arange(1, int(threshold / 0.01)):
        extra = float(np.sum((peak_lift(combined, kappa, threshold) - target) ** 2)) - sse
        if extra > budget * sse:
            break
        best = round(float(kappa), 6)
    return best


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
    verbose: bool = False,
) -> Iterator[tuple[tuple[str, str], np.ndarray, list[np.ndarray]]]:
    """Yield ``((celltype, assay), observed, [imputation of each input])`` for every training
    track of an inner fold (float64 arrays), one fold at a time.

    Each imputation comes from a model fitted on ``train`` with the track's inner fold also
    hidden (seed ``seed + 1000 * (fold + 1)``), or, for the methods of kind ``"baseline"``
    (nothing fitted), from ``train`` itself: they never read the track they impute.
    ``options`` holds each base method's options by name.
    """
    celltypes = [str(c) for c in train.get_index(DIM_CELLTYPE)]
    assays = [str(a) for a in train.get_index(DIM_ASSAY)]
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
            predictions.update(_impute_tracks(models, source, held))
            if verbose:
                print(f"ensemble: inner fold {f + 1}, {name} fitted", flush=True)
        for c, a in held:
            target = np.asarray(
                train[SIGNAL].sel({DIM_CELLTYPE: c, DIM_ASSAY: a}).values, dtype=np.float64
            )
            yield (c, a), target, [p[(c, a)] for p in predictions.values()]


def input_names(bases: Sequence[str], snapshots: Sequence[int]) -> list[str]:
    names = []
    for name in bases:
        if METHODS[name].kind == "factorization":
            names += [f"{name}@{e}" for e in snapshots]
        names.append(name)
    return names
