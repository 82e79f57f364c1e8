"""Genome annotations (BED files) as boolean masks over a compendium's positions.

A mask is a boolean :class:`xarray.DataArray` along ``position`` (with the ``chrom`` and
``start`` coordinates of the compendium it was built for): True where a 25-bp bin overlaps at
least one interval, in base pairs (bin ``[start, start + 25)`` overlaps the 0-based half-open
interval ``[lo, hi)`` when ``start < hi`` and ``start + 25 > lo``). Such masks restrict the
region-specific measures of :mod:`avocado_xr.evaluation.metrics` (MSEprom, MSEgene, MSEenh).

Shipped annotations: :func:`pilot_annotations` builds promoters and gene bodies over the ENCODE
pilot regions from the GENCODE-derived gene bounds in the package data
(``pilot_genes.hg19.bed``: 403 genes overlapping the 42 pilot regions, hg19, with strand; from
broadinstitute/ABC-Enhancer-Gene-Prediction ``CollapsedGeneBounds.hg19.bed``, MIT). **No
enhancer annotation is shipped**: enhancer masks must come from a BED file of your own (the
Avocado paper used the FANTOM5 "permissive" enhancers; the ENCODE Imputation Challenge used
FANTOM5 enhancers lifted to hg38) through :func:`enhancers`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..assembly import package_data
from ..bed import BedLike, bed_label, read_bed
from ..exceptions import AnnotationError
from ..variables import CHROM, DIM_POSITION, RESOLUTION, START

__all__ = [
    "PILOT_GENES",
    "enhancers",
    "gene_bodies",
    "intervals_mask",
    "pilot_annotations",
    "pilot_genes_file",
    "promoters",
    "read_bed",
]

#: package data file with the GENCODE gene bounds (hg19, with strand) of the pilot regions
PILOT_GENES = "pilot_genes.hg19.bed"


def _coords(ds) -> tuple[np.ndarray, np.ndarray, int]:
    for name in (CHROM, START):
        if name not in ds.coords and name not in getattr(ds, "variables", {}):
            raise AnnotationError(
                f"The data has no {name!r} coordinate along {DIM_POSITION!r}; masks are built "
                "over a compendium's chrom/start coordinates."
            )
    resolution = int(ds.attrs.get("resolution", RESOLUTION))
    return np.asarray(ds[CHROM].values), np.asarray(ds[START].values, np.int64), resolution


def _mask(
    chrom: np.ndarray,
    start: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    iv_chrom: np.ndarray,
    resolution: int,
    strict: bool,
    label: str,
) -> np.ndarray:
    codes, names = pd.factorize(chrom, sort=False)
    known = {str(n): k for k, n in enumerate(names)}
    iv_names = [str(c) for c in pd.unique(iv_chrom)]
    unknown = [c for c in iv_names if c not in known]
    if iv_names and len(unknown) == len(iv_names):
        raise AnnotationError(
            f"None of the chromosomes of {label} ({unknown[:10]}) is in the data, whose "
            f"chromosomes are {sorted(known)[:10]}; check the naming ('chr1' vs '1') and the "
            "genome build."
        )
    if strict and unknown:
        raise AnnotationError(
            f"{label} has intervals on chromosome(s) {unknown[:10]} that are not in the data "
            f"(known: {sorted(known)[:10]}); pass strict=False to ignore them."
        )
    out = np.zeros(len(start), dtype=bool)
    for name in iv_names:
        if name not in known:
            continue
        idx = np.flatnonzero(codes == known[name])
        order = np.argsort(start[idx], kind="stable")
        bins = start[idx][order]
        sel = iv_chrom == name
        # bins overlapping [lo, hi): bin_start > lo - resolution and bin_start < hi
        first = np.searchsorted(bins, lo[sel] - resolution, side="right")
        last = np.searchsorted(bins, hi[sel], side="left")
        keep = last > first
        cover = np.zeros(len(bins) + 1, dtype=np.int64)
        np.add.at(cover, first[keep], 1)
        np.add.at(cover, last[keep], -1)
        out[idx[order]] = np.cumsum(cover[:-1]) > 0
    return out


def _as_dataarray(mask: np.ndarray, chrom, start, name: str, attrs: dict) -> xr.DataArray:
    return xr.DataArray(
        mask,
        dims=(DIM_POSITION,),
        coords={CHROM: (DIM_POSITION, chrom), START: (DIM_POSITION, start)},
        name=name,
        attrs=attrs,
    )


def intervals_mask(
    bed_or_df: BedLike, ds, *, strict: bool = False, name: str = "intervals"
) -> xr.DataArray:
    """Positions of ``ds`` whose bins overlap any interval of a BED file or DataFrame.

    Parameters
    ----------
    bed_or_df : str, path or pandas.DataFrame
        Intervals (see :func:`read_bed`), 0-based half-open.
    ds : xarray.Dataset or xarray.DataArray
        Anything with ``chrom`` and ``start`` along ``position`` (a compendium, an imputation).
    strict : bool
        Raise when an interval lies on a chromosome the data does not have. By default such
        intervals are ignored (a genome-wide BED over a regional compendium); an error is
        raised only when *no* chromosome matches. Default is False.
    name : str
        Name of the returned DataArray. Default is ``"intervals"``.

    Returns
    -------
    xarray.DataArray
        Boolean, dims ``(position,)``, with the ``chrom``/``start`` coordinates of ``ds``.

    Raises
    ------
    AnnotationError
        Malformed BED, or chromosomes that do not match the data (named in the message).

    Examples
    --------
    >>> import avocado_xr as ax, pandas as pd
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> iv = pd.DataFrame({"chrom": ["chr1"], "start": [30], "end": [80]})
    >>> m = intervals_mask(iv, ds)
    >>> m.start.values[m.values].tolist()  # bins [25, 50), [50, 75), [75, 100)
    [25, 50, 75]
    """
    table = read_bed(bed_or_df)
    chrom, start, resolution = _coords(ds)
    mask = _mask(
        chrom,
        start,
        table["start"].to_numpy(),
        table["end"].to_numpy(),
        table["chrom"].to_numpy(),
        resolution,
        strict,
        bed_label(bed_or_df),
    )
    return _as_dataarray(mask, chrom, start, name, {"intervals": len(table)})


def promoters(
    tss_bed: BedLike,
    ds,
    *,
    upstream: int = 2000,
    downstream: int = 0,
    strict: bool = False,
) -> xr.DataArray:
    """Promoter positions: ``upstream`` bp 5' of each TSS (strand-aware), plus ``downstream``.

    The TSS of each line is its 5' end: ``start`` on the ``+`` strand, ``end - 1`` on the
    ``-`` strand, so a TSS BED (1-bp intervals) and a gene BED (gene bounds) both work. The
    promoter is the base-pair interval ``[tss - upstream, tss + downstream)`` on ``+`` and
    ``[tss + 1 - downstream, tss + 1 + upstream)`` on ``-``; by default (2 kb upstream, none
    downstream) the TSS base itself is excluded, as in the ENCODE Imputation Challenge scorer
    (``prom_loc = 80`` bins of 25 bp before the TSS bin) and the Avocado paper ("2 kbp
    upstream from the transcription start site", MSEProm). Bins overlapping the interval in bp
    are marked, so a TSS inside a bin may add that bin (81 bins instead of the challenge's 80).

    Parameters
    ----------
    tss_bed : str, path or pandas.DataFrame
        BED with at least 6 columns (strand in the sixth, ``+`` or ``-``), or a DataFrame with
        ``chrom``, ``start``, ``end``, ``strand``.
    ds : xarray.Dataset or xarray.DataArray
        Anything with ``chrom`` and ``start`` along ``position``.
    upstream, downstream : int
        bp 5' and 3' of the TSS. Defaults are 2000 and 0.
    strict : bool
        See :func:`intervals_mask`. Default is False.

    Returns
    -------
    xarray.DataArray
        Boolean mask named ``promoter`` along ``position``.

    Examples
    --------
    >>> import avocado_xr as ax, pandas as pd
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> genes = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [1000, 5000],
    ...                       "end": [3000, 7000], "strand": ["+", "-"]})
    >>> m = promoters(genes, ds, upstream=50)
    >>> m.start.values[m.values].tolist()  # [950, 1000) and [7000, 7050)
    [950, 975, 7000, 7025]
    """
    if upstream < 0 or downstream < 0 or upstream + downstream == 0:
        raise AnnotationError(
            f"upstream={upstream} and downstream={downstream} must be >= 0 and not both 0."
        )
    table = read_bed(tss_bed, strand=True)
    plus = (table["strand"] == "+").to_numpy()
    tss = np.where(plus, table["start"].to_numpy(), table["end"].to_numpy() - 1)
    tss = np.maximum(tss, table["start"].to_numpy())  # zero-length lines: TSS at start
    lo = np.where(plus, tss - upstream, tss + 1 - downstream)
    hi = np.where(plus, tss + downstream, tss + 1 + upstream)
    chrom, start, resolution = _coords(ds)
    mask = _mask(
        chrom,
        start,
        np.maximum(lo, 0),
        hi,
        table["chrom"].to_numpy(),
        resolution,
        strict,
        bed_label(tss_bed),
    )
    attrs = {"upstream": upstream, "downstream": downstream, "tss": len(table)}
    return _as_dataarray(mask, chrom, start, "promoter", attrs)


def gene_bodies(bed: BedLike, ds, *, strict: bool = False) -> xr.DataArray:
    """Positions overlapping a gene body (the ``start``-``end`` span of each BED line).

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> genes = gene_bodies(ax.annotations.pilot_genes_file(), ds)
    >>> genes.name, genes.dtype, int(genes.sum()) > 0
    ('gene_body', dtype('bool'), True)
    """
    return intervals_mask(bed, ds, strict=strict, name="gene_body")


def enhancers(bed: BedLike, ds, *, strict: bool = False) -> xr.DataArray:
    """Positions overlapping an enhancer of a user BED file (none is shipped).

    The package ships no enhancer annotation for any genome: pass your own BED, e.g. the
    FANTOM5 "permissive" enhancer set that the Avocado paper used for MSEEnh.

    Examples
    --------
    >>> import avocado_xr as ax, pandas as pd
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> enh = pd.DataFrame({"chrom": ["chr1"], "start": [100], "end": [150]})
    >>> int(enhancers(enh, ds).sum())
    2
    """
    return intervals_mask(bed, ds, strict=strict, name="enhancer")


def pilot_genes_file() -> str:
    """Path of the shipped GENCODE gene bounds over the ENCODE pilot regions (hg19)."""
    return str(package_data(PILOT_GENES))


def pilot_annotations(ds, *, upstream: int = 2000, downstream: int = 0) -> xr.Dataset:
    """Promoter and gene-body masks over ``ds`` from the shipped pilot-region genes (hg19).

    Promoters are ``upstream`` bp 5' of each gene's TSS (strand-aware, :func:`promoters`),
    gene bodies the gene spans (:func:`gene_bodies`), both from the GENCODE-derived gene bounds
    of ``pilot_genes.hg19.bed`` (403 genes overlapping the 42 ENCODE pilot regions). The
    Avocado paper defined both from GENCODE v19 genes in the same way. There is no
    ``enhancer`` variable: no enhancer annotation is shipped; build one from your own BED with
    :func:`enhancers` and add it (``ann["enhancer"] = enhancers(bed, ds)``).

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        hg19 positions (``chrom``/``start``), e.g. :func:`avocado_xr.datasets.roadmap_pilot`.

    Returns
    -------
    xarray.Dataset
        Boolean ``promoter`` and ``gene_body`` along ``position``.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.datasets.roadmap_pilot_sample()
    >>> ann = pilot_annotations(ds)
    >>> sorted(ann.data_vars), ann.sizes["position"] == ds.sizes["position"]
    (['gene_body', 'promoter'], True)
    """
    genome = getattr(ds, "attrs", {}).get("genome")
    if genome not in (None, "unknown", "hg19"):
        raise AnnotationError(
            f"The shipped pilot annotations are on hg19 but the data is on {genome!r}; build "
            "masks from BED files of that build with promoters()/gene_bodies()."
        )
    path = pilot_genes_file()
    out = xr.Dataset(
        {
            "promoter": promoters(path, ds, upstream=upstream, downstream=downstream),
            "gene_body": gene_bodies(path, ds),
        }
    )
    out.attrs = {
        "genome": "hg19",
        "source": f"avocado_xr package data {PILOT_GENES} (GENCODE gene bounds, ABC reference)",
    }
    return out
