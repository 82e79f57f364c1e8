"""The learned latent factors as a labelled Dataset."""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from ..genome import COARSE_SCALES
from ..variables import CHROM, DEFAULT_POSITION_CHUNK, DIM_ASSAY, DIM_CELLTYPE, DIM_POSITION, START
from .network import GENOME_TABLES

__all__ = ["factors"]

_SCALE_NAMES = ("25bp", "250bp", "5kbp")


def factors(model) -> xr.Dataset:
    """Cell type, assay and genome factors of a trained model, labelled.

    Returns
    -------
    xarray.Dataset
        - ``celltype_factors`` (celltype, celltype_factor)
        - ``assay_factors`` (assay, assay_factor)
        - ``genome_factors_25bp`` (position, factor_25bp) with ``chrom``/``start``
        - ``genome_factors_250bp`` (position_250bp, factor_250bp) with ``chrom_250bp``/
          ``start_250bp``, and likewise ``genome_factors_5kbp``
        - ``genome_features`` (position, genome_factor): the three scales concatenated per
          25-bp position (the 110-feature representation by default), a lazy Dask view.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=2_000, seed=0)
    >>> model = ax.fit(ds, epochs=1, n_layers=1, n_nodes=8, batch_size=500, device="cpu")
    >>> fac = model.factors()
    >>> fac.genome_features.shape, fac.celltype_factors.sel(celltype="C1").shape
    ((2000, 110), (32,))
    """
    net = model.net
    chrom, start = model.layout.coords()

    def table(module) -> np.ndarray:
        return module.weight.detach().float().cpu().numpy().copy()

    data_vars = {
        "celltype_factors": ((DIM_CELLTYPE, "celltype_factor"), table(net.celltype)),
        "assay_factors": ((DIM_ASSAY, "assay_factor"), table(net.assay)),
    }
    coords = {
        DIM_CELLTYPE: np.asarray(model.celltypes, dtype=object),
        DIM_ASSAY: np.asarray(model.assays, dtype=object),
        CHROM: (DIM_POSITION, chrom),
        START: (DIM_POSITION, start),
    }
    tables = [table(getattr(net, name)) for name in GENOME_TABLES]
    indices = [np.arange(len(chrom))]
    for scale, suffix, values in zip(COARSE_SCALES, _SCALE_NAMES, tables, strict=True):
        if scale == model.layout.resolution:
            data_vars[f"genome_factors_{suffix}"] = ((DIM_POSITION, f"factor_{suffix}"), values)
            continue
        index, bin_chrom, bin_start = model.layout.scale_index(scale)
        indices.append(index)
        dim = f"{DIM_POSITION}_{suffix}"
        data_vars[f"genome_factors_{suffix}"] = ((dim, f"factor_{suffix}"), values)
        coords[f"{CHROM}_{suffix}"] = (dim, bin_chrom.astype(object))
        coords[f"{START}_{suffix}"] = (dim, bin_start)
    data_vars["genome_features"] = (
        (DIM_POSITION, "genome_factor"),
        _features_view(tables, indices),
    )
    return xr.Dataset(data_vars, coords=coords, attrs=model.attrs)


def _features_view(tables, indices) -> da.Array:
    """Lazy (position, n_genome_factors) concatenation of the three scales."""
    n = len(indices[0])
    chunk = min(DEFAULT_POSITION_CHUNK, n)
    pos = da.arange(n, chunks=chunk)
    width = sum(t.shape[1] for t in tables)

    def gather(block):
        return np.concatenate(
            [tables[0][block], tables[1][indices[1][block]], tables[2][indices[2][block]]], axis=1
        )

    return da.map_blocks(
        gather, pos, new_axis=1, chunks=(pos.chunks[0], (width,)), dtype=np.float32
    )
