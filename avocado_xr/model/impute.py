"""Blockwise, lazy imputation: ``impute(ds, model)`` returns a Dask-backed Dataset."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from .._compat import TORCH_LOCK, autocast
from ..average import average_block
from ..compendium import position_chunks
from ..exceptions import DimensionError, InvalidSignalError
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
from .network import AvocadoHead

__all__ = ["ImputeState", "impute"]

#: rows (tracks x positions) pushed through the network at once (bounds task memory)
_SUB_BATCH = 65_536


@dataclass(frozen=True)
class ImputeState:
    """What a block needs, on the CPU: the head module, the genome tables (NumPy) and the
    coarse-bin indices. Shipped to the Dask workers once, as one task."""

    head: AvocadoHead
    genome: tuple[np.ndarray, np.ndarray, np.ndarray]
    index_250bp: np.ndarray
    index_5kbp: np.ndarray
    precision: str = "float32"

    @classmethod
    def from_net(cls, net, precision: str = "float32") -> ImputeState:
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
            precision=precision,
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
        take it. Rows go through the network ``_SUB_BATCH`` (tracks x positions) at a time.
        """
        tracks = [(c, a) for c in celltypes for a in assays]
        out = np.empty((len(tracks), len(position)), dtype=np.float32)
        step = max(1, _SUB_BATCH // len(tracks))
        flat = None if averages is None else averages.reshape(len(tracks), -1)
        with torch.no_grad(), autocast(torch.device("cpu"), self.precision):
            for lo in range(0, len(position), step):
                pos = position[lo : lo + step]
                genome = torch.from_numpy(self.genome_features(pos))
                average = None if flat is None else torch.from_numpy(flat[:, lo : lo + step])
                pred = self.head.predict_tracks(genome, tracks, average)
                out[:, lo : lo + len(pos)] = pred.float().numpy()
        return out.reshape(len(celltypes), len(assays), len(position))


def _impute_block(
    index, state: ImputeState, signal=None, observed=None, *, celltypes, assays, rows=None
):
    """One output block. ``signal``/``observed`` (the input compendium) feed the average;
    ``rows`` = (cell type rows, assay columns) of the requested tracks in that compendium."""
    index = index.reshape(-1)
    averages = None
    if signal is not None:
        donors = np.asarray(observed, dtype=bool)[:, rows[1]]
        if not np.isfinite(signal[:, rows[1]][donors]).all():
            raise InvalidSignalError(
                "An observed track of the compendium has NaN or infinite values in the "
                "positions being imputed, so the average of the other cell types is undefined; "
                "run avocado_xr.validate(ds, check_values=True) to find it."
            )
        averages = average_block(signal, observed, *rows)
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
    precision: str = "float32",
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
    precision : {"float32", "bfloat16"}
        Matmul precision of the network (bf16 autocast is several times faster on CPUs with
        AVX512-BF16/AMX). Default is "float32".

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
        ds, merge = model.positions(), False
    index = model.layout.locate(np.asarray(ds[CHROM].values), np.asarray(ds[START].values))
    chunks = position_chunks(ds, position_chunk)
    autocast(torch.device("cpu"), precision)  # validates precision before building anything
    state = dask.delayed(ImputeState.from_net(model.net, precision), pure=True, traverse=False)
    c_idx = [model.celltypes.index(c) for c in celltypes]
    a_idx = [model.assays.index(a) for a in assays]
    args = [da.from_array(index[None, None, :], chunks=(1, 1, chunks), name=False), state]
    kwargs = {"celltypes": c_idx, "assays": a_idx}
    if model.config.average != "none":
        args += _average_inputs(ds, celltypes, assays, chunks)
        kwargs["rows"] = (
            [list(ds.get_index(DIM_CELLTYPE)).index(c) for c in celltypes],
            [list(ds.get_index(DIM_ASSAY)).index(a) for a in assays],
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
    missing = [c for c in celltypes if c not in ds.get_index(DIM_CELLTYPE)]
    missing += [a for a in assays if a not in ds.get_index(DIM_ASSAY)]
    if missing:
        raise DimensionError(f"{missing} are in the model but not in the compendium given.")
    signal = ds[SIGNAL].transpose(DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION).data
    if not isinstance(signal, da.Array):
        signal = da.from_array(signal, chunks=(-1, -1, chunks), name=False)
    signal = signal.rechunk((-1, -1, chunks))
    return [signal, np.asarray(ds[OBSERVED].transpose(DIM_CELLTYPE, DIM_ASSAY).values)]
