"""Every measure of every imputed track of a compendium: :func:`evaluate`, :func:`metric_table`.

The measures are defined once, as the methods of :class:`avocado_xr.evaluation.metrics.Track`
(see :mod:`avocado_xr.evaluation.metrics` for the formulas and their sources): :func:`evaluate`
builds one :class:`~avocado_xr.evaluation.metrics.Track` per scored track, from its observed
and imputed values, the variance of its assay across cell types, the annotations and its
peaks, and calls the method of each requested measure, by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from .. import __version__
from ..exceptions import DimensionError, MetricError
from ..genome import GenomeLayout
from ..variables import (
    CHROM,
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    IMPUTED,
    OBSERVED,
    SIGNAL,
    START,
    check_names,
    validate,
)
from .track import (
    DIM_METRIC,
    HIGHER_IS_BETTER,
    PEAK_THRESHOLD,
    Track,
    n_top,
    resolve_metrics,
)

__all__ = ["evaluate", "metric_table"]

#: annotation needed by each region measure (a key of ``evaluate(annotations=...)``)
_NEEDS = {"mseprom": "promoter", "msegene": "gene_body", "mseenh": "enhancer"}


def _score_track(y, p, variance, annotations, peaks, keep, names, params) -> np.ndarray:
    """The measures ``names`` of one track: the methods of the same names of its :class:`Track`.

    All are NaN when the track has a non-finite value or no position to score (where the
    measure functions raise): :func:`evaluate` has checked every other input already.
    """
    fraction, catch_fraction, threshold = params
    try:
        track = Track(
            y,
            p,
            keep,
            variance=variance,
            peaks=peaks,
            fraction=fraction,
            catch_fraction=catch_fraction,
            threshold=threshold,
            **annotations,
        )
    except MetricError:
        return np.full(len(names), np.nan)
    return np.array([getattr(track, name)() for name in names], dtype=np.float64)


def _shared(value):
    """A Dask array as one Delayed over its *unoptimised* graph (other values unchanged).

    Handing Dask arrays to ``dask.delayed`` optimises each one separately, which fuses the
    shared upstream blocks (e.g. a whole imputation block) into every track's graph, so each
    of n tracks recomputed them: n times the work. Unoptimised, all tracks share those keys.
    """
    if not _is_dask(value):
        return value
    return value.rechunk(-1).to_delayed(optimize_graph=False).ravel()[0]


def _is_dask(array) -> bool:
    return isinstance(getattr(array, "data", array), da.Array)


def _position_index(observed: xr.Dataset, imputed: xr.Dataset) -> np.ndarray | None:
    """Index of imputed's positions in observed's (None when they are the same)."""
    obs_chrom, obs_start = np.asarray(observed[CHROM].values), np.asarray(observed[START].values)
    for name in (CHROM, START):
        if name not in imputed.coords and name not in imputed.variables:
            raise DimensionError(
                f"The imputation has no {name!r} coordinate; it needs the chrom/start of the "
                "compendium it imputes."
            )
    imp_chrom, imp_start = np.asarray(imputed[CHROM].values), np.asarray(imputed[START].values)
    if (
        len(imp_start) == len(obs_start)
        and np.array_equal(imp_start, obs_start)
        and np.array_equal(imp_chrom, obs_chrom)
    ):
        return None
    layout = GenomeLayout.from_coords(
        obs_chrom, obs_start, int(observed.attrs.get("resolution", 25))
    )
    return layout.locate(imp_chrom, imp_start)


def _position_mask(name: str, value, observed, imputed, index) -> np.ndarray:
    """A boolean mask over imputed's positions from a mask over either object's."""
    if _is_dask(value):
        raise MetricError(
            f"The {name} mask is Dask-backed; load it first (masks are small: {name}.load())."
        )
    array = np.asarray(getattr(value, "values", value))
    if array.dtype != bool or array.ndim != 1:
        raise MetricError(
            f"The {name} mask must be a 1-D boolean array along position, got {array.dtype} "
            f"with shape {array.shape}."
        )
    n_imp, n_obs = imputed.sizes[DIM_POSITION], observed.sizes[DIM_POSITION]
    if len(array) == n_imp:
        return array
    if index is not None and len(array) == n_obs:
        return array[index]
    raise MetricError(
        f"The {name} mask has {len(array)} positions but the imputation has {n_imp}; build "
        "it over the same positions (e.g. avocado_xr.annotations.promoters(bed, imputed))."
    )


def _annotation_masks(annotations, observed, imputed, index) -> dict[str, np.ndarray]:
    if annotations is None:
        return {}
    if isinstance(annotations, str):
        if annotations != "pilot":
            raise MetricError(
                f"annotations={annotations!r}; pass 'pilot', a Dataset or a mapping of masks."
            )
        from .annotations import pilot_annotations

        annotations = pilot_annotations(imputed)
    if isinstance(annotations, xr.Dataset):
        annotations = {str(k): annotations[k] for k in annotations.data_vars}
    if not isinstance(annotations, Mapping):
        raise MetricError(
            "annotations must be 'pilot', an xarray.Dataset or a mapping of boolean masks "
            f"with keys among {sorted(set(_NEEDS.values()))}, got {type(annotations).__name__}."
        )
    known = set(_NEEDS.values())
    unknown = sorted(set(annotations) - known)
    if unknown:
        raise MetricError(
            f"Unknown annotation(s) {unknown}; the measures use {sorted(known)} "
            "(mseprom, msegene, mseenh)."
        )
    return {
        key: _position_mask(key, value, observed, imputed, index)
        for key, value in annotations.items()
    }


def _peaks_for(peaks, celltype: str, assay: str, observed, imputed, index):
    """Peak mask of one track (array, Dask array or None)."""
    if peaks is None:
        return None
    if isinstance(peaks, Mapping):
        value = peaks.get((celltype, assay))
        if value is None:
            return None
        if isinstance(value, xr.DataArray | np.ndarray | list | tuple):
            return _position_mask(
                f"peaks of ({celltype}, {assay})", value, observed, imputed, index
            )
        from .annotations import intervals_mask

        return intervals_mask(value, imputed).values
    if isinstance(peaks, xr.DataArray):
        sel = {
            dim: name
            for dim, name in ((DIM_CELLTYPE, celltype), (DIM_ASSAY, assay))
            if dim in peaks.dims
        }
        value = peaks.sel(sel)
        if value.dims != (DIM_POSITION,):
            raise MetricError(
                f"peaks must have dims among (celltype, assay, position), got {peaks.dims}."
            )
        n_imp = imputed.sizes[DIM_POSITION]
        if value.sizes[DIM_POSITION] != n_imp:
            if index is None or value.sizes[DIM_POSITION] != observed.sizes[DIM_POSITION]:
                raise MetricError(
                    f"peaks has {value.sizes[DIM_POSITION]} positions, the imputation {n_imp}."
                )
            value = value.isel({DIM_POSITION: index})
        return value.data
    raise MetricError(
        "peaks must be None, a boolean DataArray (celltype, assay, position) or a mapping "
        f"{{(celltype, assay): mask or BED}}, got {type(peaks).__name__}."
    )


def evaluate(
    observed: xr.Dataset,
    imputed: xr.Dataset,
    *,
    annotations=None,
    metrics: Sequence[str] | str | None = None,
    peaks=None,
    mask=None,
    threshold: float = PEAK_THRESHOLD,
    fraction: float = 0.01,
    catch_fraction: float = 0.05,
) -> xr.Dataset:
    """Score every imputed track against the observed one: ``score`` (celltype, assay, metric).

    Each track is scored by one task (its observed and imputed values are loaded together
    and every requested measure computed from them); nothing is computed when the inputs are
    Dask-backed: the result is then Dask-backed too, and ``.compute()`` (or
    :func:`metric_table`) runs the tasks. With NumPy-backed inputs the scores are computed at
    once. A task holds one whole track in memory, about 130 bytes per position at its peak
    with all measures (float64 copies, top-fraction weights, sort orders): ~150 MB for the
    1.1M pilot positions, ~15 GB for a 115M-position genome, so bound the parallelism on
    genome-wide data with ``dask.config.set(num_workers=...)``.

    Parameters
    ----------
    observed : xarray.Dataset
        The compendium with the truth: ``signal`` and ``observed`` (e.g. the full compendium
        before masking).
    imputed : xarray.Dataset
        ``imputed`` (celltype, assay, position) with ``chrom``/``start``; its positions must be
        the observed ones or a subset (e.g. a region). Its celltype and assay coordinates
        define the tracks scored.
    annotations : xarray.Dataset, mapping or "pilot", optional
        Boolean position masks named ``promoter`` (for ``mseprom``), ``gene_body``
        (``msegene``) and ``enhancer`` (``mseenh``), over the imputed or observed positions.
        ``"pilot"`` uses :func:`avocado_xr.evaluation.annotations.pilot_annotations` (hg19
        promoters and gene bodies; no enhancers are shipped). A measure whose annotation is
        not given is NaN (by default mseprom, msegene and mseenh are NaN).
    metrics : list of str, optional
        Measures to compute (names of :data:`~avocado_xr.evaluation.metrics.METRICS` or
        aliases such as ``"MSEglobal"``, ``"AucObs1"``). Default is all of them.
    peaks : DataArray or mapping, optional
        Observed peak calls for ``catchpeakobs``, ``recall`` and ``precision``: a boolean
        DataArray with dims among (celltype, assay, position), or a mapping
        ``{(celltype, assay): boolean mask or BED path/DataFrame}``. Tracks without peaks use
        the observed signal thresholded at ``threshold`` instead (recorded in the attrs).
    mask : array-like of bool, optional
        Positions to score (e.g. one chromosome, or outside artifact regions); all positions
        by default. Top-1% sets and correlations are then taken within these positions.
    threshold : float
        Peak threshold on the signal scale. Default is arcsinh(2) = 1.4436 (p = 0.01).
    fraction, catch_fraction : float
        The "top 1%" and "top 5%" fractions. Defaults are 0.01 and 0.05.

    Returns
    -------
    xarray.Dataset
        ``score`` (celltype, assay, metric), float64, NaN where the track is not observed in
        ``observed``, has non-finite values in either track, or lacks what a measure needs;
        coordinate ``higher_is_better`` (metric). Attributes record the settings.

    Raises
    ------
    MetricError
        Unknown metric names, annotations or masks of the wrong length.
    UnknownCelltypeError, UnknownAssayError
        A track of the imputation is not in the compendium.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> from avocado_xr.evaluation.baselines import average_baseline
    >>> avg = average_baseline(ds, "E065", "H3K4me3")
    >>> imp = avg.expand_dims(celltype=["E065"], assay=["H3K4me3"]).to_dataset(name="imputed")
    >>> scores = evaluate(ds, imp, annotations="pilot", metrics=["mse", "mseprom", "gwcorr"])
    >>> scores.score.sel(celltype="E065", assay="H3K4me3").round(3).values.tolist()
    [0.241, 1.144, 0.779]
    """
    validate(observed)
    if IMPUTED not in imputed.data_vars:
        raise DimensionError(
            f"The imputation has no variable {IMPUTED!r}; evaluate() scores a Dataset with "
            f"{IMPUTED!r} (celltype, assay, position), e.g. model.impute(ds)."
        )
    imp = imputed[IMPUTED]
    dims = (DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION)
    if set(imp.dims) != set(dims):
        raise DimensionError(f"Variable {IMPUTED!r} must have dims {dims}, got {imp.dims}.")
    imp = imp.transpose(*dims)
    names = resolve_metrics(metrics)
    celltypes = check_names(
        list(imputed.get_index(DIM_CELLTYPE)), observed.get_index(DIM_CELLTYPE), DIM_CELLTYPE
    )
    assays = check_names(
        list(imputed.get_index(DIM_ASSAY)), observed.get_index(DIM_ASSAY), DIM_ASSAY
    )
    index = _position_index(observed, imputed)
    ann = _annotation_masks(annotations, observed, imputed, index)
    keep = None if mask is None else _position_mask("mask", mask, observed, imputed, index)
    params = (fraction, catch_fraction, threshold)
    for value in (fraction, catch_fraction):
        n_top(1, value)  # fail early on a bad fraction

    observed_table = observed[OBSERVED].compute()  # small (celltype, assay) table
    all_flags = observed_table.values
    flags = observed_table.sel({DIM_CELLTYPE: celltypes, DIM_ASSAY: assays}).values
    signal = observed[SIGNAL]
    if index is not None:
        signal = signal.isel({DIM_POSITION: index})

    variances = {}
    if "msevar" in names:
        for j, assay in enumerate(assays):
            if not flags[:, j].any():
                continue
            column = list(observed.get_index(DIM_ASSAY)).index(assay)
            donors = [
                str(c)
                for c, o in zip(observed.get_index(DIM_CELLTYPE), all_flags[:, column], strict=True)
                if o
            ]
            variance = signal.sel({DIM_ASSAY: assay, DIM_CELLTYPE: donors}).astype(np.float64)
            variances[assay] = variance.var(DIM_CELLTYPE).data

    lazy = (
        _is_dask(signal) or _is_dask(imp) or (isinstance(peaks, xr.DataArray) and _is_dask(peaks))
    )
    rows = []
    for i, celltype in enumerate(celltypes):
        row = []
        for j, assay in enumerate(assays):
            if not flags[i, j]:
                row.append(da.full(len(names), np.nan) if lazy else np.full(len(names), np.nan))
                continue
            y = signal.sel({DIM_CELLTYPE: celltype, DIM_ASSAY: assay}).data
            p = imp.sel({DIM_CELLTYPE: celltype, DIM_ASSAY: assay}).data
            track_peaks = _peaks_for(peaks, celltype, assay, observed, imputed, index)
            args = (y, p, variances.get(assay), ann, track_peaks, keep, names, params)
            if lazy:
                args = tuple(_shared(arg) for arg in args)
                task = dask.delayed(_score_track, pure=False)(*args)
                row.append(da.from_delayed(task, shape=(len(names),), dtype=np.float64))
            else:
                row.append(_score_track(*args))
        rows.append(da.stack(row) if lazy else np.stack(row))
    data = da.stack(rows) if lazy else np.stack(rows)

    peaks_note = (
        "observed signal >= threshold (no peak calls given)"
        if peaks is None
        else "given peak calls (observed signal >= threshold for tracks without)"
    )
    out = xr.Dataset(
        {"score": ((DIM_CELLTYPE, DIM_ASSAY, DIM_METRIC), data)},
        coords={
            DIM_CELLTYPE: np.asarray(celltypes, dtype=object),
            DIM_ASSAY: np.asarray(assays, dtype=object),
            DIM_METRIC: np.asarray(names, dtype=object),
            "higher_is_better": (DIM_METRIC, [HIGHER_IS_BETTER[n] for n in names]),
        },
        attrs={
            "source": f"avocado_xr-{__version__}",
            "fraction": fraction,
            "catch_fraction": catch_fraction,
            "peak_threshold": threshold,
            "peaks": peaks_note,
            "annotations": ",".join(sorted(ann)) or "none",
            "positions": int(imputed.sizes[DIM_POSITION] if keep is None else keep.sum()),
        },
    )
    return out


def metric_table(scores: xr.Dataset | xr.DataArray) -> pd.DataFrame:
    """The scores as a table: one row per scored track (``celltype/assay``) and a ``mean`` row.

    Tracks whose scores are all NaN (not observed) are left out; the ``mean`` row averages each
    measure over the tracks where it is defined. Dask-backed scores are computed.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> from avocado_xr.evaluation.baselines import average_baseline
    >>> avg = average_baseline(ds, "E065", "H3K4me3")
    >>> imp = avg.expand_dims(celltype=["E065"], assay=["H3K4me3"]).to_dataset(name="imputed")
    >>> metric_table(evaluate(ds, imp, metrics=["mse", "gwcorr"])).round(3)
    ... # doctest: +NORMALIZE_WHITESPACE
                    mse  gwcorr
    track
    E065/H3K4me3  0.241   0.779
    mean          0.241   0.779
    """
    score = scores["score"] if isinstance(scores, xr.Dataset) else scores
    extra = set(score.dims) - {DIM_CELLTYPE, DIM_ASSAY, DIM_METRIC}
    if extra:
        raise MetricError(
            f"metric_table takes scores with dims (celltype, assay, metric); select or "
            f"average over {sorted(extra)} first."
        )
    score = score.transpose(DIM_CELLTYPE, DIM_ASSAY, DIM_METRIC).compute()
    values = np.asarray(score.values)
    names = [str(m) for m in score[DIM_METRIC].values]
    rows, index = [], []
    for i, celltype in enumerate(score[DIM_CELLTYPE].values):
        for j, assay in enumerate(score[DIM_ASSAY].values):
            if np.isnan(values[i, j]).all():
                continue
            rows.append(values[i, j])
            index.append(f"{celltype}/{assay}")
    table = pd.DataFrame(rows, index=pd.Index(index, name="track"), columns=names, dtype=float)
    with np.errstate(all="ignore"):
        mean = table.mean(axis=0, skipna=True) if len(table) else pd.Series(np.nan, names)
    table.loc["mean"] = mean
    return table
