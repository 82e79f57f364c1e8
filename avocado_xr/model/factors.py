"""The learned latent factors as a labelled Dataset."""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from ..coords import genome_coords
from ..genome import COARSE_SCALES
from ..variables import (
    CHROM,
    DEFAULT_POSITION_CHUNK,
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    START,
)
from .genome_store import SCALE_NAMES
from .network import GENOME_TABLES

__all__ = ["factors"]


def factors(model) -> xr.Dataset:
    """Cell type, assay and genome factors of a trained model, labelled.

    Returns
    -------
    xarray.Dataset
        - ``celltype_factors`` (celltype, celltype_factor)
        - ``assay_factors`` (assay, assay_factor)
        - ``genome_factors_25bp`` (position, factor_25bp) with ``chrom``/``start``
        - ``genome_factors_250bp`` (position_250bp, factor_250bp) with ``chrom_250bp``/
          ``start_250bp``, and likewise ``genome_factors_5kbp``. With the original Avocado's
          coarse rule (``config.coarse_rule == "flat"``, imported models) coarse bin ``k``
          holds positions ``10 k .. 10 k + 9`` (``200 k ..`` at 5 kbp) of the flat index,
          which may straddle two regions: ``chrom_250bp``/``start_250bp`` are then those of
          the bin's first position, and ``first_position_250bp`` (``first_position_5kbp``)
          is that position's index.
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
    head = model.head

    def table(module) -> np.ndarray:
        return module.weight.detach().float().cpu().numpy().copy()

    data_vars = {
        "celltype_factors": ((DIM_CELLTYPE, "celltype_factor"), table(head.celltype)),
        "assay_factors": ((DIM_ASSAY, "assay_factor"), table(head.assay)),
    }
    labels = {
        DIM_CELLTYPE: np.asarray(model.celltypes, dtype=object),
        DIM_ASSAY: np.asarray(model.assays, dtype=object),
    }
    if model.genome is not None:  # a genome-wide model: lazily from its zarr store
        genome = model.genome.dataset()
    else:
        genome = xr.Dataset(coords=genome_coords(model.layout))
        flat = model.config.coarse_rule == "flat"
        for k, (scale, name) in enumerate(zip(COARSE_SCALES, SCALE_NAMES, strict=True)):
            suffix = "" if k == 0 else f"_{name}"
            values = table(getattr(model.net, GENOME_TABLES[k]))
            genome[f"genome_factors_{name}"] = ((DIM_POSITION + suffix, f"factor_{name}"), values)
            if k and flat:
                genome = genome.assign_coords(_flat_coords(model, scale, suffix, len(values)))
            elif k:
                genome = genome.assign_coords(genome_coords(model.layout.coarse(scale), suffix))
    n = model.layout.n_positions
    width = model.config.n_genome_factors
    positions = da.arange(n, chunks=min(DEFAULT_POSITION_CHUNK, n))
    features = da.map_blocks(
        model.genome_features, positions, new_axis=1, chunks=(positions.chunks[0], (width,)),
        dtype=np.float32, meta=np.empty((0, 0), np.float32),
    )  # fmt: skip
    genome["genome_features"] = ((DIM_POSITION, "genome_factor"), features)
    return genome.assign(data_vars).assign_coords(labels).assign_attrs(model.attrs)


def _flat_coords(model, scale: int, suffix: str, n_bins: int) -> dict:
    """Coordinates of the original's flat coarse bins: bin ``k`` holds positions
    ``k * step .. k * step + step - 1`` (``step = scale // resolution``); labelled with its
    first position (chromosome, start and index)."""
    step = scale // model.layout.resolution
    first = np.arange(n_bins, dtype=np.int64) * step
    chrom, start = model.layout.coords_at(first)
    dim = DIM_POSITION + suffix
    return {
        CHROM + suffix: (dim, chrom),
        START + suffix: (dim, start),
        f"first_position{suffix}": (dim, first),
    }
