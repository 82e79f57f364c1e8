"""Blockwise, lazy imputation: ``impute(ds, model)`` returns a Dask-backed Dataset.

Building the graph costs O(segments + blocks): the positions of ``ds`` are mapped onto the
model's as a few *runs* (``ds`` positions ``[lo, hi)`` are model positions ``model_lo +
...``) using the layouts of their :class:`~avocado_xr.coords.GenomeIndex`. Each block task
receives its runs, the network head (shipped once) and a handle to only the genome-factor rows
it needs: slices of the in-memory tables, or the genome-factor store (zarr) of a genome-wide
model, from which the task reads its own rows. No task receives the whole genome's tables or
coordinates, so memory per task is bounded by the block size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cached_property

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from .._compat import TORCH_LOCK, autocast, resolve_device
from ..average import average_block
from ..compendium import position_chunks
from ..coords import dataset_layout
from ..exceptions import DimensionError, InvalidSignalError
from ..genome import GenomeLayout
from ..imputation import imputation_result
from ..variables import (
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    OBSERVED,
    SIGNAL,
    check_names,
)
from .network import AvocadoHead

__all__ = ["ImputeState", "TableRows", "impute", "position_runs"]

#: rows (tracks x positions) pushed through the network at once (bounds task memory)
_SUB_BATCH = 65_536


@dataclass(frozen=True)
class ImputeState:
    """The network head on the CPU, in eval mode: shipped to the Dask workers once, and run
    on ``device`` there (``None``: CUDA if the machine running the task has it, else CPU)."""

    head: AvocadoHead
    precision: str = "float32"
    device: str | None = None

    @classmethod
    def from_head(
        cls, head: AvocadoHead, precision: str = "float32", device: str | None = None
    ) -> ImputeState:
        head = copy.deepcopy(head).cpu().float().eval()
        for param in head.parameters():
            param.requires_grad_(False)
        return cls(head=head, precision=precision, device=device)

    @cached_property
    def _placed(self) -> tuple[AvocadoHead, torch.device]:
        """The head on the device, made once per process (the shipped head stays on the CPU)."""
        device = resolve_device(self.device)
        return (self.head if device.type == "cpu" else copy.deepcopy(self.head).to(device)), device

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_placed"}

    def predict_block(self, genome: np.ndarray, celltypes, assays, averages=None) -> np.ndarray:
        """Predictions ``(len(celltypes), len(assays), len(genome))`` from genome features.

        ``averages`` (same shape) holds the average-of-other-cell-types input for models that
        take it. Rows go through the network ``_SUB_BATCH`` (tracks x positions) at a time.
        """
        head, device = self._placed
        tracks = [(c, a) for c in celltypes for a in assays]
        n = len(genome)
        out = np.empty((len(tracks), n), dtype=np.float32)
        step = max(1, _SUB_BATCH // len(tracks))
        flat = None if averages is None else averages.reshape(len(tracks), -1)
        with torch.no_grad(), autocast(device, self.precision):
            for lo in range(0, n, step):
                features = torch.from_numpy(genome[lo : lo + step]).to(device)
                average = None if flat is None else torch.from_numpy(flat[:, lo : lo + step])
                average = None if average is None else average.to(device)
                pred = head.predict_tracks(features, tracks, average)
                out[:, lo : lo + len(features)] = pred.float().cpu().numpy()
        return out.reshape(len(celltypes), len(assays), n)


@dataclass(frozen=True)
class TableRows:
    """The rows of in-memory genome tables that one block reads (model positions
    ``[lo, lo + len(index_250bp))``), with their coarse-bin indices."""

    tables: tuple[np.ndarray, np.ndarray, np.ndarray]
    lo: int
    index_250bp: np.ndarray
    index_5kbp: np.ndarray

    @classmethod
    def of(cls, net, lo: int, hi: int) -> TableRows:
        def rows(table, a, b):
            return table.weight[a:b].detach().float().cpu().numpy()

        i250 = net.index_250bp[lo:hi].cpu().numpy()
        i5k = net.index_5kbp[lo:hi].cpu().numpy()
        b250 = (int(i250.min()), int(i250.max()) + 1) if hi > lo else (0, 0)
        b5k = (int(i5k.min()), int(i5k.max()) + 1) if hi > lo else (0, 0)
        g25, g250, g5k = net.genome_tables()
        tables = (rows(g25, lo, hi), rows(g250, *b250), rows(g5k, *b5k))
        return cls(tables, lo, i250 - b250[0], i5k - b5k[0])

    def features(self, positions: np.ndarray) -> np.ndarray:
        local = np.asarray(positions) - self.lo
        g25, g250, g5k = self.tables
        return np.concatenate(
            [g25[local], g250[self.index_250bp[local]], g5k[self.index_5kbp[local]]], axis=1
        )


def position_runs(ds: xr.Dataset, layout: GenomeLayout) -> np.ndarray:
    """``ds``'s positions as runs onto the model's: rows ``(lo, hi, model_lo)`` meaning that
    positions ``lo..hi-1`` of ``ds`` are model positions ``model_lo..``. O(segments) when ``ds``
    has a :class:`~avocado_xr.coords.GenomeIndex`; one pass over ``chrom``/``start`` otherwise.

    Raises
    ------
    RegionError
        A position of ``ds`` is not one of the model's.
    """
    ds_layout = dataset_layout(ds)
    runs = []
    for c, s, n, off in zip(
        ds_layout.chrom, ds_layout.start, ds_layout.n_bins, ds_layout.offsets, strict=True
    ):
        ends = layout.locate([c, c], [s, s + (n - 1) * ds_layout.resolution])
        if ends[1] - ends[0] == n - 1:  # contiguous in the model too (the usual case)
            runs.append((int(off), int(off) + n, int(ends[0])))
            continue
        chrom, start = ds_layout.subset(int(off), int(off) + n).coords()
        index = layout.locate(chrom, start)
        cut = np.flatnonzero(np.diff(index) != 1) + 1
        for a, b in zip(np.r_[0, cut], np.r_[cut, n], strict=True):
            runs.append((int(off) + int(a), int(off) + int(b), int(index[a])))
    return np.asarray(runs, dtype=np.int64).reshape(-1, 3)


def _block_positions(runs: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Model positions of ``ds`` positions ``[lo, hi)``."""
    parts = []
    for a, b, m in runs:
        a2, b2 = max(a, lo), min(b, hi)
        if a2 < b2:
            parts.append(np.arange(m + a2 - a, m + b2 - a, dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _impute_block(
    runs, lo, hi, genome, state: ImputeState, signal=None, observed=None, *, celltypes, assays,
    rows=None,
):  # fmt: skip
    """One output block: ``ds`` positions ``[lo, hi)``. ``signal``/``observed`` (the input
    compendium) feed the average; ``rows`` = (cell type rows, assay columns) of the requested
    tracks in that compendium."""
    features = genome.features(_block_positions(runs, lo, hi))
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
        return state.predict_block(features, celltypes, assays, averages)


def impute(
    ds: xr.Dataset | None,
    model,
    *,
    celltypes=None,
    assays=None,
    merge: bool = True,
    position_chunk: int | None = None,
    precision: str | None = None,
    device: str | torch.device | None = None,
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
    precision : {"float32", "bfloat16"}, optional
        Matmul precision of the network (bf16 autocast is several times faster on CPUs with
        AVX512-BF16/AMX). Default: the precision the model was trained with (float32 for
        models without that record, e.g. imported ones).
    device : str or torch.device, optional
        Where the network runs, e.g. ``"cpu"`` or ``"cuda"`` (checked here, so a device this
        machine lacks fails at once). Default: CUDA if the machine that computes a block has
        it, else its CPU, decided there (a CPU client can drive GPU Dask workers). Results
        agree across devices to float32 rounding.

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
    runs = position_runs(ds, model.layout)
    chunks = position_chunks(ds, position_chunk)
    if precision is None:
        precision = model.training_info.get("precision", "float32")
    autocast(torch.device("cpu"), precision)  # validates precision before building anything
    device = None if device is None else str(resolve_device(device))
    head = ImputeState.from_head(model.head, precision, device)
    token = dask.base.tokenize(
        model.config.digest(), model.head.state_dict(), _genome_token(model), runs, chunks,
        celltypes, assays, precision, device,
    )  # fmt: skip
    state = dask.delayed(head, pure=True, traverse=False, name=f"avocado-head-{token}")
    c_idx = [model.celltypes.index(c) for c in celltypes]
    a_idx = [model.assays.index(a) for a in assays]
    kwargs = {"celltypes": c_idx, "assays": a_idx}
    signal = observed = None
    if model.config.average != "none":
        signal, observed = _average_inputs(ds, celltypes, assays, chunks)
        kwargs["rows"] = (
            [list(ds.get_index(DIM_CELLTYPE)).index(c) for c in celltypes],
            [list(ds.get_index(DIM_ASSAY)).index(a) for a in assays],
        )
    blocks, lo = [], 0
    for k, size in enumerate(chunks):
        hi = lo + size
        block_runs = runs[(runs[:, 0] < hi) & (runs[:, 1] > lo)]
        if model.genome is not None:
            genome = model.genome
        else:
            m_lo = int((block_runs[:, 2] + np.maximum(lo - block_runs[:, 0], 0)).min())
            m_hi = int(
                (block_runs[:, 2] + np.minimum(hi, block_runs[:, 1]) - block_runs[:, 0]).max()
            )
            genome = TableRows.of(model.net, m_lo, m_hi)
        args = [block_runs, lo, hi, genome, state]
        if signal is not None:
            args += [signal[:, :, lo:hi], observed]
        task = dask.delayed(_impute_block, pure=True, traverse=signal is not None)(
            *args, **kwargs, dask_key_name=f"avocado-impute-{token}-{k}"
        )
        shape = (len(c_idx), len(a_idx), size)
        blocks.append(
            da.from_delayed(task, shape, dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))
        )
        lo = hi
    data = da.concatenate(blocks, axis=2)
    return imputation_result(data, celltypes, assays, ds, model.attrs, merge=merge)


def _genome_token(model) -> str:
    """What identifies the genome factors of a model, cheaply."""
    if model.genome is not None:
        return str(model.genome.path)
    return dask.base.tokenize(*(t.weight.detach().cpu().numpy() for t in model.net.genome_tables()))


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
    return signal, np.asarray(ds[OBSERVED].transpose(DIM_CELLTYPE, DIM_ASSAY).values)
