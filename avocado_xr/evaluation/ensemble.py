"""A stacked ensemble of imputation methods, with weights learned by an inner cross-validation.

Stacked generalization (Wolpert, *Neural Networks* 5, 1992; Breiman, "Stacked regressions",
*Machine Learning* 24, 1996; van der Laan, Polley & Hubbard, "Super Learner", *Stat. Appl.
Genet. Mol. Biol.* 6, 2007): several *base* methods of
:data:`~avocado_xr.evaluation.crossval.METHODS` each impute a track, and a linear *combiner*
(an intercept plus non-negative weights, Breiman's constraint) turns their imputations into
one. The combiner is fitted to out-of-fold imputations of the training tracks, so it learns
how much to trust each method on tracks that the method did not see, which is the situation
of a held-out track.

The defaults combine Avocado with the average of the other cell types, the combination the
ENCODE Imputation Challenge pointed to (Schreiber et al., *Genome Biology* 24, 79, 2023: the
average baseline ranked near the top, and the best entries combined a learned model with
it): Avocado has the lower squared error, the average ranks peaks better
(``benchmarks/RESULTS.md``). The regression baselines ``mixture`` and ``cross-assay``
(:mod:`.baselines`) borrow from the track's own cell type, as ChromImpute does; in 5-fold
cross-validation they lower the ensemble's error and raise its ranking measures, and so
does the average smoothed over 9 and 33 positions (``average-w9``, ``average-w33``). A
factorization base can enter at several training lengths from one training run
(``snapshots``; "snapshot ensembles", Huang et al., ICLR 2017): Avocado trained longer ranks
better but overshoots the level of some tracks, and the combiner takes the best of both.

:func:`fit_ensemble`, for one training compendium (in cross-validation, an outer fold's
training tracks):

1. **Inner folds.** The observed tracks are split into ``inner_k`` folds with
   :func:`~avocado_xr.evaluation.crossval.make_folds` (each leaves every cell type and assay a
   training track; a track that cannot be held out trains every inner model).
2. **Out-of-fold base imputations.** For each inner fold, every base method that learns is
   fitted with that fold also hidden and imputes the fold's tracks. Methods of kind
   ``"baseline"`` learn nothing: their imputation of a track is computed from the *other*
   tracks, so it is taken from the whole training compendium.
3. **Quantile-normalized copies** (``quantile_normalize``). Each factorization input also
   enters mapped, track by track, onto the quantiles of the same assay's observed tracks in
   the other cell types (quantile normalization; Bolstad et al., *Bioinformatics* 19, 2003,
   :func:`~.quantiles.quantile_map`). Avocado extrapolates to a held-out (cell type, assay)
   pair, and on a few pairs it overshoots the level of the whole track several-fold; the map
   keeps the ranks but bounds the level and spread to what the assay shows elsewhere, so the
   combiner can lean on a model's ranking without inheriting such an overshoot. The quantiles
   are taken at a fixed random subset of 100,000 positions.
4. **Combiner.** Non-negative least squares of the observed signal on the out-of-fold
   imputations (:func:`~.stacking.group_weights`), accumulated track by track as normal
   equations (memory: one track). By default each cell type gets its own weights, fitted to
   its tracks' rows plus all rows down-weighted to the same total (``scope="celltype"``), with
   a ridge pull towards the smoothed average alone (``anchor``; ``benchmarks/RESULTS.md``).
5. **Peak calibration** (``peak_budget``). A least-squares combination regresses towards the
   mean, so few positions reach the peak threshold (arcsinh(2), -log10 p >= 2) at which peaks
   are called: without it the ensemble calls far fewer peaks than the observed tracks have.
   Values in ``[kappa, threshold)`` are lifted onto the threshold by a strictly increasing
   map (:func:`~.stacking.peak_lift`), so every rank-based measure is unchanged. ``kappa`` is
   the lowest level (steps of 0.01) at which the lift spends at most ``peak_budget`` (by
   default half) of each inner out-of-fold track's *gain*, the amount by which the
   combination's squared error is below the average baseline's
   (:func:`~.stacking.choose_kappa`): every inner track the combiner wins against the
   average stays won, by at least half its margin. (A budget on the summed error lets the
   tracks with a thin margin pay for everyone's lift.) It is learned, like the weights,
   from training tracks only.
   :meth:`EnsembleModel.uncalibrated` returns the model without it.
6. **Refit.** Every base method is refitted on the whole training compendium; the returned
   :class:`EnsembleModel` imputes by applying the combiner (and the calibration) to their
   imputations, lazily (the quantiles of each refitted model's imputation of every track are
   computed once, at the subset's positions).

Leakage rules
-------------
- **A held-out track is never seen.** :func:`fit_ensemble` gets the training compendium, in
  which the outer held-out tracks are hidden (``observed`` False, ``signal`` all NaN; see
  :func:`avocado_xr.mask`). The inner folds are made from its observed tracks only, so an
  outer held-out track is in no inner fold and no inner training set, and gives no row to
  the combiner or the calibration: changing its values changes nothing that is learned, and
  its imputation comes from the same weights and models.
- **A training track's base imputation never depends on its own values.** The imputation of
  a training track that enters the combiner comes from a base model fitted with that track
  hidden (its inner fold), or from a baseline that never reads the track it imputes, so the
  weights measure out-of-sample accuracy, not memorisation. Its quantile map's reference
  comes from the other cell types' observed tracks only (the average baseline's rule).
- **Folds depend only on which tracks are observed** (and the seed), never on their values.

``tests/test_ensemble.py`` checks all three. Runtime: a base method that learns is fitted
``inner_k + 1`` times; snapshots cost nothing.

Examples
--------
>>> import avocado_xr as ax
>>> from avocado_xr.evaluation.ensemble import fit_ensemble
>>> ds = ax.testing.simulate_compendium(n_celltypes=4, n_positions=1_000, seed=0)
>>> small = {"epochs": 2, "n_layers": 1, "n_nodes": 16, "batch_size": 500, "device": "cpu"}
>>> model = fit_ensemble(ds, inner_k=2, snapshots=[1], factorization=small)
>>> model.inputs[:4], model.inputs[4:]  # doctest: +NORMALIZE_WHITESPACE
(['avocado@1', 'avocado', 'avocado@1~qn', 'avocado~qn'],
 ['average', 'average-w9', 'average-w33', 'mixture', 'cross-assay'])
>>> model.weights.coef.dims
('celltype', 'assay', 'input')
>>> model.impute(ds, celltypes="C0", merge=False).imputed.sizes["assay"]
3
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..exceptions import AvocadoXrWarning, ConfigError, InvalidSignalError
from ..imputation import imputation_result
from ..variables import (
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    IMPUTED,
    OBSERVED,
    check_names,
    validate,
)
from .crossval import METHODS, Method, make_folds
from .quantiles import QUANTILE_SUFFIX, map_tracks
from .stacking import (
    DIM_INPUT,
    REFERENCE,
    anchor_reference,
    check_settings,
    choose_kappa,
    combine,
    fit_base,
    group_weights,
    inner_settings,
    input_names,
    normal_equations,
    out_of_fold,
    peak_lift,
    quantile_tables,
)
from .track import PEAK_THRESHOLD

__all__ = ["DEFAULT_BASES", "METHOD", "EnsembleModel", "fit_ensemble"]

#: the base methods of :func:`fit_ensemble` unless ``bases`` says otherwise
DEFAULT_BASES = ("avocado", "average", "average-w9", "average-w33", "mixture", "cross-assay")
_DIMS = (DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION)
#: positions per track (a random subset) kept to choose the calibration and to take quantiles
_SAMPLE_POSITIONS = 100_000


class EnsembleModel:
    """A fitted stacked ensemble: refitted base models and a linear combiner per track.

    Built by :func:`fit_ensemble`. :meth:`impute` computes ``intercept[c, a] + sum over
    inputs of coef[c, a, input] * input`` from the base models' lazy imputations (and their
    quantile-normalized copies), then the peak calibration (if any).

    Attributes
    ----------
    models : dict of str to model
        The refitted base models by input name (``"avocado@10"``: the ``avocado`` base after
        10 epochs; ``"avocado"``: after all of them).
    weights : xarray.Dataset
        ``coef`` (celltype, assay, input), ``intercept`` (celltype, assay) and ``tracks``
        (celltype, assay): the number of inner out-of-fold tracks of the track's group.
    quantiles : xarray.Dataset or None
        The quantile maps of the ``"...~qn"`` inputs: ``source`` (celltype, assay, input,
        quantile), the quantiles of each model's imputation of each track, and ``reference``
        (celltype, assay, quantile), those of the same assay in the other cell types.
    calibration : dict or None
        ``{"kappa": ..., "threshold": ...}`` of the peak calibration.
    inner_folds : xarray.DataArray
        The inner fold of each training track (-1: never held out).
    info : dict
        Settings, the training tracks, the inner out-of-fold squared error (with and without
        the calibration) and the seconds spent per step.
    """

    def __init__(
        self,
        models: dict,
        weights: xr.Dataset,
        *,
        calibration: dict | None = None,
        quantiles: xr.Dataset | None = None,
        inner_folds: xr.DataArray | None = None,
        info: dict | None = None,
    ):
        self.models = dict(models)
        self.weights = weights
        self.quantiles = quantiles
        self.calibration = None if calibration is None else dict(calibration)
        self.inner_folds = inner_folds
        self.info = dict(info or {})

    @property
    def inputs(self) -> list[str]:
        """Names of the imputations the combiner takes, in its order."""
        return [str(name) for name in self.weights.get_index(DIM_INPUT)]

    def __repr__(self) -> str:
        peaks = "off" if self.calibration is None else f"kappa {self.calibration['kappa']:.2f}"
        return (
            f"<EnsembleModel of {', '.join(self.inputs)}; {self.weights.attrs['scope']} "
            f"weights; peak calibration {peaks}>"
        )

    def save(self, path, *, overwrite: bool = False) -> None:
        """Write the ensemble into the directory ``path``: its base models, combiner,
        quantile tables and calibration (see :mod:`.ensemble_io`).

        Examples
        --------
        >>> import tempfile, avocado_xr as ax
        >>> ds = ax.datasets.roadmap_pilot_sample()
        >>> model = fit_ensemble(ds, bases=("average", "mean"), inner_k=3)
        >>> directory = tempfile.mkdtemp()
        >>> model.save(directory)
        >>> EnsembleModel.load(directory).weights.equals(model.weights)
        True
        """
        from .ensemble_io import write_ensemble

        write_ensemble(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path, *, device: str = "cpu") -> EnsembleModel:
        """Load an ensemble written by :meth:`save`; nothing from the files is executed.

        Raises
        ------
        ModelFileError
            A file is missing, malformed or does not match its recorded SHA-256.
        """
        from .ensemble_io import read_ensemble

        return cls(**read_ensemble(path, device=device))

    def uncalibrated(self) -> EnsembleModel:
        """The same ensemble without the peak calibration (a shallow copy)."""
        out = copy.copy(self)
        out.calibration = None
        return out

    def impute(
        self,
        ds: xr.Dataset,
        *,
        celltypes=None,
        assays=None,
        merge: bool = True,
        position_chunk: int | None = None,
    ) -> xr.Dataset:
        """Impute tracks of ``ds`` lazily: the combiner applied to every base model's
        imputation.

        Parameters
        ----------
        ds : xarray.Dataset
            The compendium to impute from (the training compendium: the average-based
            methods read its observed tracks).
        celltypes, assays : str or list of str, optional
            Tracks to impute. Default: all.
        merge : bool
            Return ``ds`` with ``imputed`` added (True, default) or ``imputed`` alone.
        position_chunk : int, optional
            Positions per output block, passed to the base models.

        Returns
        -------
        xarray.Dataset
            ``imputed`` (celltype, assay, position), float32; Dask-backed when any base
            imputation is (the Avocado models' always are).

        Examples
        --------
        >>> import avocado_xr as ax
        >>> ds = ax.datasets.roadmap_pilot_sample()
        >>> model = fit_ensemble(ds, bases=("average", "mean"), inner_k=3)
        >>> out = model.impute(ds, celltypes="E065", assays="H3K4me3", merge=False)
        >>> out.imputed.dims, out.attrs["method"]
        (('celltype', 'assay', 'position'), 'ensemble')
        """
        validate(ds)
        celltypes = check_names(celltypes, ds.get_index(DIM_CELLTYPE), DIM_CELLTYPE)
        assays = check_names(assays, ds.get_index(DIM_ASSAY), DIM_ASSAY)
        for dim, names in ((DIM_CELLTYPE, celltypes), (DIM_ASSAY, assays)):
            missing = [n for n in names if n not in self.weights.get_index(dim)]
            if missing:
                raise ConfigError(
                    f"The ensemble has no weights for {dim}(s) {missing}; it was fitted on "
                    f"{list(self.weights.get_index(dim))}. Fit it on a compendium with them."
                )
        parts = {}
        for name, model in self.models.items():
            part = model.impute(
                ds, celltypes=celltypes, assays=assays, merge=False, position_chunk=position_chunk
            )[IMPUTED]
            parts[name] = part.transpose(*_DIMS).astype(np.float32)
        chunks = next((p.chunks for p in parts.values() if p.chunks is not None), None)
        if chunks is not None:  # one block structure for the sum
            parts = {n: p.chunk(dict(zip(_DIMS, chunks, strict=True))) for n, p in parts.items()}
        tracks = {DIM_CELLTYPE: celltypes, DIM_ASSAY: assays}
        for name in self.inputs:
            if name.endswith(QUANTILE_SUFFIX):
                raw = name.removesuffix(QUANTILE_SUFFIX)
                tables = self.quantiles.sel(tracks)
                source = tables["source"].sel({DIM_INPUT: raw}, drop=True)
                parts[name] = map_tracks(parts[raw], source, tables["reference"])
        weights = self.weights.sel(tracks)
        weights = weights[["coef", "intercept"]].astype(np.float32)
        out = weights["intercept"]
        for name in self.inputs:
            out = out + weights["coef"].sel({DIM_INPUT: name}, drop=True) * parts[name]
        if self.calibration is not None:
            out = peak_lift(out, self.calibration["kappa"], self.calibration["threshold"])
        out = out.transpose(*_DIMS).astype(np.float32)
        attrs = {
            **_provenance(),
            "method": "ensemble",
            "inputs": ",".join(self.inputs),
            "peak_calibration": "off" if self.calibration is None else str(self.calibration),
        }
        return imputation_result(out.data, celltypes, assays, ds, attrs, merge=merge)


def _provenance() -> dict:
    from .. import __version__

    return {"source": f"avocado_xr-{__version__}"}


def fit_ensemble(
    train: xr.Dataset,
    *,
    seed: int = 0,
    bases: Sequence[str] = DEFAULT_BASES,
    snapshots: Sequence[int] = (10,),
    inner_k: int = 4,
    inner_epochs: int | None = None,
    scope: str = "celltype",
    shrinkage: float = 1.0,
    anchor: float = 0.3,
    peak_budget: float | None = 0.5,
    peak_threshold: float = PEAK_THRESHOLD,
    quantile_normalize: bool = True,
    factorization: dict | None = None,
    autoencoder: dict | None = None,
    verbose: bool = False,
) -> EnsembleModel:
    """Fit a stacked ensemble of base methods to the observed tracks of ``train``.

    See the module documentation for the procedure and its leakage rules: the combiner is
    learned from out-of-fold imputations of ``train``'s own observed tracks (an inner
    cross-validation), then every base method is refitted on all of ``train``.

    Parameters
    ----------
    train : xarray.Dataset
        The training compendium (for cross-validation: held-out tracks already masked).
    seed : int
        Seeds the inner folds and the base methods (inner fold ``f`` fits with
        ``seed + 1000 * (f + 1)``, the refit with ``seed``). Default is 0.
    bases : sequence of str
        Base methods, names of :data:`~avocado_xr.evaluation.crossval.METHODS` (not
        ``"ensemble"``). Default: :data:`DEFAULT_BASES` (Avocado; the averages, raw and
        smoothed over 9 and 33 positions; ``mixture`` and ``cross-assay``).
    snapshots : sequence of int
        Epochs after which each factorization base is also kept as a combiner input
        (``"avocado@10"``), from the same training run; those not below the base's
        ``epochs`` are dropped. Default is ``(10,)``: with ``epochs=40`` the inputs are
        Avocado after 10 and 40 epochs; with ``epochs=10``, Avocado alone.
    inner_k : int
        Inner folds; a base method that learns is fitted ``inner_k + 1`` times. Default is 4.
    inner_epochs : int, optional
        Epochs of the factorization bases in the inner fits (fewer is faster, but the weights
        are then learned for weaker models than the refitted ones; must exceed every kept
        snapshot). Default: the same as the refit.
    scope : {"celltype", "assay", "global"}
        Fit each track's weights to the inner tracks of its cell type or of its assay (plus
        all inner tracks down-weighted by ``shrinkage``), or to all of them. Default is
        "celltype".
    shrinkage : float
        Weight of the pooled rows in a group's fit, relative to the group's own share.
        Default is 1.0.
    anchor : float
        Pull of the weights towards the smoothed average ``"average-w9"`` alone (else
        ``"average"``; :func:`.stacking.anchor_reference`): a ridge penalty of ``anchor``
        times each input's sum of squares (:func:`.stacking.group_weights`). 0 turns it off.
        Default is 0.3.
    peak_budget : float or None
        Largest share, in [0, 1], of each inner track's gain over the average baseline (see
        the module documentation) that the peak calibration may spend; needs ``"average"``
        in ``bases``. None turns the calibration off. Default is 0.5.
    peak_threshold : float
        The peak threshold of the calibration. Default is arcsinh(2) (p = 0.01), that of
        :func:`~avocado_xr.evaluation.metrics.peak_recall`.
    quantile_normalize : bool
        Also give the combiner a quantile-normalized copy of each factorization input
        (``"avocado~qn"``; see the module documentation). Default is True.
    factorization, autoencoder : dict, optional
        Options of the base methods of those kinds (e.g. :func:`avocado_xr.fit`'s
        ``{"epochs": 40, "n_layers": 1, ...}``), as :func:`~.crossval.method_options` builds
        them.
    verbose : bool
        Print the progress of the inner fits. Default is False.

    Returns
    -------
    EnsembleModel

    Raises
    ------
    ConfigError
        Unknown or nested base methods, ``inner_k < 2``, an ``inner_epochs`` not above the
        kept snapshots, a bad scope, shrinkage, anchor or budget, an anchor or a budget
        without its reference in ``bases``.
    InvalidSignalError
        No training track can be held out in the inner folds (too few tracks).

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> model = fit_ensemble(ds, bases=("average", "mean"), inner_k=3, scope="assay")
    >>> model.weights.coef.sel(celltype="E003", input="average").round(2).values.tolist()
    [0.89, 0.77, 0.87, 0.82, 0.79]
    >>> round(model.calibration["kappa"], 2)  # lifted onto the peak threshold from here
    1.04
    """
    validate(train)
    bases = list(bases)
    check_settings(bases, scope, shrinkage, inner_k, peak_budget, anchor)
    by_kind = {"factorization": factorization, "autoencoder": autoencoder, "baseline": None}
    options = {name: dict(by_kind[METHODS[name].kind] or {}) for name in bases}
    epochs = int((factorization or {}).get("epochs", 10))
    snapshots = sorted({int(e) for e in snapshots if 0 < int(e) < epochs})
    inner_options = inner_settings(options, inner_epochs, snapshots)
    tic = time.perf_counter()
    with warnings.catch_warnings():  # such tracks train every inner model; no row is lost
        warnings.filterwarnings("ignore", "(?s).*can never be held out", AvocadoXrWarning)
        folds = make_folds(train, inner_k, seed=seed)
    if not (folds.values >= 0).any():
        raise InvalidSignalError(
            "No training track can be held out in the inner folds (every cell type and assay "
            "needs a second observed track), so the combiner has nothing to learn from; "
            "observe more tracks or use a single method."
        )
    celltypes = [str(c) for c in train.get_index(DIM_CELLTYPE)]
    assays = [str(a) for a in train.get_index(DIM_ASSAY)]
    names = input_names(bases, snapshots, quantile_normalize)
    rng = np.random.default_rng(seed)
    n_positions = train.sizes[DIM_POSITION]
    rows = np.sort(rng.choice(n_positions, min(n_positions, _SAMPLE_POSITIONS), False))
    inner = out_of_fold(
        train,
        folds,
        bases,
        seed=seed,
        options=inner_options,
        snapshots=snapshots,
        quantile_rows=rows if quantile_normalize else None,
        verbose=verbose,
    )
    grams, kept = normal_equations(inner, rows)
    seconds = {"inner": time.perf_counter() - tic}
    reference = anchor_reference(bases)
    settings = {"scope": scope, "shrinkage": shrinkage, "anchor": anchor, "reference": reference}
    weights = group_weights(grams, celltypes, assays, names, **settings)
    tracks = combine(weights, kept, None if peak_budget is None else REFERENCE)
    kappa = None
    if peak_budget is not None:
        kappa = choose_kappa(tracks.values(), peak_threshold, peak_budget)
    calibration = None if kappa is None else {"kappa": kappa, "threshold": float(peak_threshold)}
    combined = np.concatenate([p for p, _, _ in tracks.values()])
    target = np.concatenate([y for _, y, _ in tracks.values()])
    lifted = combined if kappa is None else peak_lift(combined, kappa, peak_threshold)

    tic = time.perf_counter()
    models: dict = {}
    for name in bases:
        models.update(fit_base(name, train, seed, options[name], snapshots))
    models = {name: models[name] for name in names if name in models}
    quantiles = None
    if quantile_normalize:
        quantiles = quantile_tables(models, train, rows, names)
    seconds["refit"] = time.perf_counter() - tic
    observed = np.asarray(train[OBSERVED].values)
    info = {
        "bases": bases,
        "snapshots": snapshots,
        "inner_k": inner_k,
        "inner_epochs": inner_epochs,
        "scope": scope,
        "shrinkage": shrinkage,
        "anchor": anchor,
        "anchor_reference": reference,
        "peak_budget": peak_budget,
        "quantile_normalize": quantile_normalize,
        "seed": seed,
        "train_tracks": [f"{celltypes[c]}/{assays[a]}" for c, a in np.argwhere(observed)],
        "inner_tracks": [f"{c}/{a}" for c, a in grams],
        "inner_mse": float(np.mean((combined - target) ** 2)),
        "inner_mse_calibrated": float(np.mean((lifted - target) ** 2)),
        "seconds": seconds,
    }
    return EnsembleModel(
        models,
        weights,
        calibration=calibration,
        quantiles=quantiles,
        inner_folds=folds,
        info=info,
    )


#: the registry entry (registered as ``"ensemble"`` by :mod:`avocado_xr.evaluation`)
METHOD = Method(
    fit_ensemble,
    "ensemble",
    "stacked ensemble of avocado (snapshots), averages, mixture, cross-assay; inner-CV weights",
)
