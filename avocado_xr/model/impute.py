"""Blockwise, lazy imputation: ``impute(ds, model)`` returns a Dask-backed Dataset."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from .._compat import TORCH_LOCK
from ..average import average_block
from ..compendium import position_chunks
from ..exceptions import DimensionError
from ..imputation import imputation_result
from ..variables import (
    CHROM,
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    OBSERVED,
    SIGNAL,
    START,
    check_names,
)
from .network import AvocadoHead, with_average

__all__ = ["ImputeState", "impute"]

#: positions pushed through the network at once inside a block (bounds task memory)
_SUB_BATCH = 16_384


@dataclass(frozen=True)
class ImputeState:
    """What a block needs, on the CPU: the head module, the genome tables (NumPy) and the
    coarse-bin indices. Shipped to the Dask workers once, as one task."""

    head: AvocadoHead
    genome: tuple[np.ndarray, np.ndarray, np.ndarray]
    index_250bp: np.ndarray
    index_5kbp: np.ndarray

    @classmethod
    def from_net(cls, net) -> ImputeState:
        head = copy.deepcopy(net.head).cpu().float().eval()
        for param in head.parameters():
            param.requires_grad_(False)
        return cls(
            head=head,
            genome=tuple(
                t.weight.detach().float().cpu().numpy().copy() for t in net.genome_tables()
            ),
            index_250bp=net.index_250bp.cpu().numpy().copy(),
            index_5kbp=net.index_5kbp.cpu().numpy().copy(),
        )

    def genome_features(self, position: np.ndarray) -> np.ndarray:
        g25, g250, g5k = self.genome
        return np.concatenate(
            [g25[position], g250[self.index_250bp[position]], g5k[self.index_5kbp[position]]],
            axis=1,
        )

    def predict_block(self, position: np.ndarray, celltypes, assays, averages=None) -> np.ndarray:
        """Predictions of shape (len(celltypes), len(assays), len(position)), eval mode.

        ``averages`` (same shape) holds the average-of-other-cell-types input for models that
        take it.
        """
        out = np.empty((len(celltypes), len(assays), len(position)), dtype=np.float32)
        with torch.no_grad():
            for lo in range(0, len(position), _SUB_BATCH):
                pos = position[lo : lo + _SUB_BATCH]
                genome = torch.from_numpy(self.genome_features(pos))
                for i, c in enumerate(celltypes):
                    for j, a in enumerate(assays):
                        average = None
                        if averages is not None:
                            average = torch.from_numpy(averages[i, j, lo : lo + len(pos)])
                        out[i, j, lo : lo + len(pos)] = self.head(
                            torch.full((len(pos),), c),
                            torch.full((len(pos),), a),
                            with_average(genome, average, self.head.config),
                        ).numpy()
        return out


def _impute_block(
    index, state: ImputeState, signal=None, observed=None, *, celltypes, assays, rows=None
):
    """One output block. ``signal``/``observed`` (the input compendium) feed the average;
    ``rows`` = (cell type rows, assay columns) of the requested tracks in that compendium."""
    index = index.reshape(-1)
    averages = None if signal is None else average_block(signal, observed, *rows)
    with TORCH_LOCK:
        return state.predict_block(index, celltypes, assays, averages)


def impute(
    ds: xr.Dataset | None,
    model,
    *,
    celltypes=None,
    assays=None,
    merge: bool = True,
    position_chunk: int | None = None,
) -> xr.Dataset:
    """Impute every (celltype, assay) track at the positions of ``ds``, lazily.

    Nothing is computed here: the result is a Dask-backed Dataset whose blocks are computed
    on demand (``.compute()``, ``.sel(...).values``, plotting) or streamed to disk with
    ``.to_zarr()``, one ``position`` chunk at a time. The model's weights travel to the
    Dask workers once, as one CPU NumPy task.

    Parameters
    ----------
    ds : xarray.Dataset or None
        Anything with ``chrom``/``start`` along ``position`` whose bins the model was trained
        on (the full compendium or a region of it). ``None``: all the model's positions.
        Models that take the average of the other cell types as an input
        (``average="input"``/``"residual"``) need the compendium itself (``signal`` and
        ``observed``): the average is computed from it block by block.
    model : AvocadoModel
        A trained model.
    celltypes, assays : str or list of str, optional
        Tracks to impute. Default: all of the model's.
    merge : bool
        Return ``ds`` (restricted to those cell types and assays) with ``imputed`` added
        (True, default), or a Dataset of ``imputed`` alone (False).
    position_chunk : int, optional
        Positions per output block. Default: the chunks of a Dask-backed ``ds.signal``,
        else 131,072.

    Returns
    -------
    xarray.Dataset
        ``imputed`` (celltype, assay, position), float32, with ``ds``'s coordinates and
        provenance attributes.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=2_000, seed=0)
    >>> model = ax.fit(ds, epochs=1, n_layers=1, n_nodes=16, batch_size=500, device="cpu")
    >>> imp = model.impute(ds, celltypes=["C0"], position_chunk=500)
    >>> imp.imputed.dims, imp.imputed.data.chunks[-1]
    (('celltype', 'assay', 'position'), (500, 500, 500, 500))
    >>> imp.imputed.sel(celltype="C0", assay="A1").shape
    (2000,)
    """
    celltypes = check_names(celltypes, model.celltypes, DIM_CELLTYPE)
    assays = check_names(assays, model.assays, DIM_ASSAY)
    if ds is None:
        chrom, start = model.layout.coords()
        ds = xr.Dataset(coords={CHROM: (DIM_POSITION, chrom), START: (DIM_POSITION, start)})
        merge = False
    index = model.layout.locate(np.asarray(ds[CHROM].values), np.asarray(ds[START].values))
    chunks = position_chunks(ds, position_chunk)
    state = dask.delayed(ImputeState.from_net(model.net), pure=True, traverse=False)
    c_idx = [model.celltypes.index(c) for c in celltypes]
    a_idx = [model.assays.index(a) for a in assays]
    args = [da.from_array(index[None, None, :], chunks=(1, 1, chunks), name=False), state]
    kwargs = {"celltypes": c_idx, "assays": a_idx}
    if model.config.average != "none":
        args += _average_inputs(ds, celltypes, assays, chunks)
        kwargs["rows"] = (
            [list(ds.indexes[DIM_CELLTYPE]).index(c) for c in celltypes],
            [list(ds.indexes[DIM_ASSAY]).index(a) for a in assays],
        )
    data = da.map_blocks(
        _impute_block,
        *args,
        **kwargs,
        chunks=((len(c_idx),), (len(a_idx),), chunks),
        dtype=np.float32,
        meta=np.empty((0, 0, 0), dtype=np.float32),
        name="avocado-impute-" + dask.base.tokenize(index, state, c_idx, a_idx, chunks, *args[2:]),
    )
    return imputation_result(data, celltypes, assays, ds, model.attrs, merge=merge)


def _average_inputs(ds, celltypes, assays, chunks) -> list:
    """The compendium's signal (lazy) and observed table for the average-of-others input."""
    if SIGNAL not in ds or OBSERVED not in ds:
        raise DimensionError(
            "This model takes the average of the same assay in the other cell types as an "
            "input, so impute() needs the compendium (signal and observed), not only "
            "coordinates."
        )
    missing = [c for c in celltypes if c not in ds.indexes[DIM_CELLTYPE]]
    missing += [a for a in assays if a not in ds.indexes[DIM_ASSAY]]
    if missing:
        raise DimensionError(f"{missing} are in the model but not in the compendium given.")
    signal = ds[SIGNAL].transpose(DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION).data
    if not isinstance(signal, da.Array):
        signal = da.from_array(signal, chunks=(-1, -1, chunks), name=False)
    signal = signal.rechunk((-1, -1, chunks))
    return [signal, np.asarray(ds[OBSERVED].transpose(DIM_CELLTYPE, DIM_ASSAY).values)]
