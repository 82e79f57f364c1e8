"""Cross-validation over observed tracks, for Avocado and the baselines, in one API.

``cross_validate(ds, k=5, method=...)`` splits the observed experiments into ``k`` folds,
hides each fold in turn, imputes it with a model trained on the rest, and returns the
out-of-fold imputations of every observed track as one lazy Dataset, with the metrics of
:func:`avocado_xr.evaluate` when asked.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..compendium import mask
from ..exceptions import AvocadoXrWarning, ConfigError
from ..variables import DIM_ASSAY, DIM_CELLTYPE, IMPUTED, OBSERVED, validate
from .baselines import BaselineModel

__all__ = [
    "METHODS",
    "Method",
    "cross_validate",
    "make_folds",
    "method_options",
    "register_method",
]


def _factorization(**defaults) -> Callable:
    def run(train: xr.Dataset, *, seed: int = 0, **options):
        from ..model import fit

        return fit(train, seed=seed, **{**defaults, **options})

    return run


def _autoencoder(train: xr.Dataset, *, seed: int = 0, **options):
    from .autoencoder import fit_autoencoder

    return fit_autoencoder(train, seed=seed, **options)


def _baseline(name: str) -> Callable:
    return lambda train, *, seed=0, **options: BaselineModel(name)


@dataclass(frozen=True)
class Method:
    """A cross-validation method: ``fit(train_ds, *, seed, **options)`` returns a model with
    ``impute(ds, *, celltypes, assays, merge)``; ``kind`` says which options it takes
    (``"factorization"``: :func:`avocado_xr.fit`'s, ``"autoencoder"``:
    :func:`~avocado_xr.evaluation.autoencoder.fit_autoencoder`'s, ``"baseline"``: none,
    ``"ensemble"``: :func:`~avocado_xr.evaluation.ensemble.fit_ensemble`'s, which include
    the options of its base methods by kind)."""

    fit: Callable
    kind: str
    description: str


#: the methods by name; the CLI and the notebooks list these
METHODS: dict[str, Method] = {
    "avocado": Method(_factorization(), "factorization", "the paper's model"),
    "avocado-average": Method(
        _factorization(average="input"),
        "factorization",
        "Avocado with the average of the other cell types as an extra input",
    ),
    "linear": Method(
        _factorization(architecture="linear"),
        "factorization",
        "PREDICTD-style generalized dot product of the factors",
    ),
    "average": Method(_baseline("average"), "baseline", "average of the other cell types"),
    "average-w9": Method(
        _baseline("average-w9"), "baseline", "the average, moving mean over 9 positions"
    ),
    "average-w33": Method(
        _baseline("average-w33"), "baseline", "the average, moving mean over 33 positions"
    ),
    "mean": Method(_baseline("mean"), "baseline", "mean of the other cell types' track means"),
    "mixture": Method(
        _baseline("mixture"),
        "baseline",
        "the other cell types mixed by weights fitted on the cell type's other assays",
    ),
    "cross-assay": Method(
        _baseline("cross-assay"),
        "baseline",
        "the cell type's other assays, mapped by a regression fitted in the other cell types",
    ),
    "autoencoder": Method(_autoencoder, "autoencoder", "denoising autoencoder over assays"),
}
_KINDS = ("factorization", "autoencoder", "baseline", "ensemble")


def register_method(name: str, method: Method) -> None:
    """Add ``method`` to :data:`METHODS` as ``name`` (the CLI, the notebooks and
    :func:`cross_validate` then offer it).

    Methods built on this module, like the stacked ensemble (registered by
    :mod:`avocado_xr.evaluation`), join the registry this way, so this module imports none of
    them.

    Examples
    --------
    >>> from avocado_xr.evaluation.baselines import BaselineModel
    >>> zero = Method(lambda train, *, seed=0: BaselineModel("mean"), "baseline", "demo")
    >>> register_method("demo-mean", zero)
    >>> "demo-mean" in METHODS
    True
    >>> del METHODS["demo-mean"]
    """
    if not isinstance(method, Method) or method.kind not in _KINDS:
        raise ConfigError(
            f"register_method needs a Method of a kind in {_KINDS}, got {method!r} for {name!r}."
        )
    METHODS[name] = method


def method_options(
    *, factorization: dict, autoencoder: dict, ensemble: dict | None = None, methods=None
) -> dict[str, dict]:
    """Options for each method of :data:`METHODS` (or those named), by the kind it takes.

    The ``"ensemble"`` kind gets the options of its base methods by kind (``factorization``,
    ``autoencoder``) plus its own settings from ``ensemble`` (``inner_k``, ``inner_epochs``,
    ``bases``... of :func:`~avocado_xr.evaluation.ensemble.fit_ensemble`).

    Examples
    --------
    >>> opts = method_options(factorization={"epochs": 3}, autoencoder={"n_windows": 10},
    ...                       ensemble={"inner_k": 3})
    >>> opts["avocado"], opts["average"], opts["autoencoder"]
    ({'epochs': 3}, {}, {'n_windows': 10})
    >>> opts["ensemble"]
    {'factorization': {'epochs': 3}, 'autoencoder': {'n_windows': 10}, 'inner_k': 3}
    """
    methods = list(METHODS) if methods is None else list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"Unknown method(s) {unknown}; choose from {list(METHODS)}.")
    by_kind = {
        "factorization": dict(factorization),
        "autoencoder": dict(autoencoder),
        "baseline": {},
        "ensemble": {
            "factorization": dict(factorization),
            "autoencoder": dict(autoencoder),
            **(ensemble or {}),
        },
    }
    return {name: copy.deepcopy(by_kind[METHODS[name].kind]) for name in methods}


def _held_out_imputation(fitted, train: xr.Dataset, held, like: xr.DataArray) -> xr.DataArray:
    """The imputation of the held-out tracks only (NaN elsewhere), lazily.

    The fitted model imputes each held-out track on its own, so only those are computed.
    """
    out = None
    for c, a in held:
        part = fitted.impute(train, celltypes=[c], assays=[a], merge=False)[IMPUTED]
        part = part.reindex_like(like)
        out = part if out is None else out.fillna(part)
    return out


def make_folds(ds: xr.Dataset, k: int = 5, *, seed: int = 0) -> xr.DataArray:
    """Assign the observed tracks to ``k`` folds so that hiding any one fold leaves every cell
    type and every assay at least one training track.

    Tracks are visited in random order and each goes to the smallest fold that can still take
    it. A track that no fold can take (for example the only observed track of a cell type:
    hiding it would leave that cell type's factors untrained) is never held out: it gets fold
    ``-1``, is always used for training, has no out-of-fold imputation, and is named in a
    warning.

    Returns
    -------
    xarray.DataArray
        int (celltype, assay): the fold of each observed track, -1 otherwise.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> folds = make_folds(ax.datasets.roadmap_pilot_sample(), k=5, seed=0)
    >>> sorted(np.bincount(folds.values.ravel()).tolist())
    [5, 5, 5, 5, 5]
    """
    validate(ds)
    if k < 2:
        raise ConfigError(f"k must be at least 2, got {k}")
    observed = np.asarray(ds[OBSERVED].values, dtype=bool)
    per_celltype = observed.sum(1)
    per_assay = observed.sum(0)
    folds = np.full(observed.shape, -1, dtype=np.int64)
    held_c = np.zeros((k, observed.shape[0]), dtype=np.int64)
    held_a = np.zeros((k, observed.shape[1]), dtype=np.int64)
    size = np.zeros(k, dtype=np.int64)
    rng = np.random.default_rng(seed)
    tracks = np.argwhere(observed)
    for c, a in tracks[rng.permutation(len(tracks))]:
        ok = (held_c[:, c] + 1 < per_celltype[c]) & (held_a[:, a] + 1 < per_assay[a])
        if not ok.any():
            continue
        candidates = np.flatnonzero(ok)
        fold = candidates[np.argmin(size[candidates] + rng.random(len(candidates)) * 0.5)]
        folds[c, a] = fold
        held_c[fold, c] += 1
        held_a[fold, a] += 1
        size[fold] += 1
    never = [
        (str(ds.get_index(DIM_CELLTYPE)[c]), str(ds.get_index(DIM_ASSAY)[a]))
        for c, a in np.argwhere(observed & (folds < 0))
    ]
    if never:
        warnings.warn(
            f"{never} can never be held out without leaving a cell type or assay with no "
            "training track; they are always used for training and get no out-of-fold score.",
            AvocadoXrWarning,
            stacklevel=2,
        )
    return xr.DataArray(
        folds,
        dims=(DIM_CELLTYPE, DIM_ASSAY),
        coords={DIM_CELLTYPE: ds[DIM_CELLTYPE], DIM_ASSAY: ds[DIM_ASSAY]},
        name="fold",
    )


def cross_validate(
    ds: xr.Dataset,
    *,
    k: int = 5,
    method: str | Callable = "avocado",
    seed: int = 0,
    evaluate: bool = True,
    annotations=None,
    **options,
) -> xr.Dataset:
    """k-fold cross-validation over the observed tracks of a compendium.

    Parameters
    ----------
    ds : xarray.Dataset
        The compendium.
    k : int
        Number of folds. Default is 5.
    method : str or callable
        One of :data:`METHODS` (``"avocado"``, ``"avocado-average"`` (Avocado with the
        average of the other cell types as an input), ``"linear"`` (PREDICTD-style),
        ``"average"``, ``"mean"``, ``"mixture"``, ``"cross-assay"`` (the regression
        baselines of :mod:`~avocado_xr.evaluation.baselines`), ``"autoencoder"``,
        ``"ensemble"`` (a stacked ensemble,
        :func:`~avocado_xr.evaluation.ensemble.fit_ensemble`)) or a function
        ``method(train_ds, *, seed, **options)`` returning a fitted model, i.e. anything
        with ``.impute(ds, *, celltypes, assays, merge)`` like :class:`AvocadoModel`.
    seed : int
        Seeds the folds and the methods. Default is 0.
    evaluate : bool
        Add the metrics of :func:`avocado_xr.evaluate` as ``score``
        (celltype, assay, metric). Default is True.
    annotations : optional
        Passed to :func:`avocado_xr.evaluate`.
    **options
        Passed to the method (e.g. ``epochs=10, n_layers=1`` for Avocado).

    Returns
    -------
    xarray.Dataset
        ``imputed`` (celltype, assay, position): each observed track's out-of-fold imputation
        (lazy; NaN for tracks never held out and unobserved ones), ``fold`` (celltype, assay),
        and ``score`` if ``evaluate``.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> cv = cross_validate(ds, k=5, method="average", evaluate=False)
    >>> int(cv.imputed.notnull().all("position").sum())
    25
    """
    if isinstance(method, str) and method not in METHODS:
        raise ConfigError(f"Unknown method {method!r}; choose from {sorted(METHODS)}.")
    run = METHODS[method].fit if isinstance(method, str) else method
    folds = make_folds(ds, k, seed=seed)
    out = None
    celltypes, assays = ds.get_index(DIM_CELLTYPE), ds.get_index(DIM_ASSAY)
    for fold in range(k):
        held = [(str(celltypes[c]), str(assays[a])) for c, a in np.argwhere(folds.values == fold)]
        if not held:
            continue
        train = mask(ds, held)
        part = _held_out_imputation(run(train, seed=seed + fold, **options), train, held, folds)
        out = part if out is None else out.fillna(part)
    result = xr.Dataset(
        {IMPUTED: out.astype(np.float32), "fold": folds},
        attrs={
            "method": method if isinstance(method, str) else getattr(method, "__name__", "custom"),
            "k": k,
            "seed": seed,
            "options": str(options),
        },
    )
    if evaluate:
        from .scoring import evaluate as score

        result["score"] = score(ds, result, annotations=annotations)["score"]
    return result
