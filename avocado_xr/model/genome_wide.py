"""Whole-genome training, the paper's two phases, on a Dask cluster.

Phase 1 trains everything (network, cell type, assay and genome factors) on a subset of the
genome, the ENCODE pilot regions in the paper (800 epochs). Phase 2 freezes the network and
the cell type and assay factors and fits the genome factors of each chromosome on its own (200
epochs each): ~25x the work of phase 1 and independent per chromosome, so each chromosome is
one Dask task, on the active ``dask.distributed`` client if there is one. A task holds its
chromosome's genome state and one data block at a time (the block sampler), writes a
checkpoint every epoch and, at the end, its own arrays of the genome-factor store
(:class:`~avocado_xr.model.genome_store.GenomeFactorStore`). So a rerun skips the chromosomes
that finished and resumes the one that was cut off, and a task that loses its worker is retried
elsewhere and resumes from its checkpoint: on CPU the result is bit-identical to an
uninterrupted run. With ``device="cuda"`` each task claims a ``GPU`` worker resource (start
GPU workers with ``--resources GPU=1``), so one task owns one GPU.
"""

from __future__ import annotations

import copy
import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import dask
import numpy as np
import torch
import xarray as xr

from .._compat import active_client, resolve_device
from .._progress import progress
from ..coords import layout_of
from ..exceptions import ConfigError, InvalidSignalError, StoreError
from ..genome import GenomeLayout
from ..variables import DIM_ASSAY, DIM_CELLTYPE, DIM_POSITION, OBSERVED
from .avocado import AvocadoModel
from .checkpoint import Checkpoint
from .genome_store import GenomeFactorStore
from .network import AvocadoHead, AvocadoNet
from .sampler import make_sampler
from .train import fit, optimizers_for, run_epochs

__all__ = ["fit_genome"]


@dataclass(frozen=True)
class _Job:
    """Everything a chromosome task needs (small and picklable: paths and the head)."""

    compendium: str
    factors: str
    head: dict = field(repr=False)
    config: dict
    celltypes: tuple[str, ...]
    assays: tuple[str, ...]
    epochs: int
    seed: int
    device: str | None
    precision: str
    sampler: str
    tracks_per_block: int | None
    batch_size: int


def _compendium_path(ds) -> str:
    if isinstance(ds, str | os.PathLike):
        return os.fspath(ds)
    source = getattr(ds, "encoding", {}).get("source")
    if not source:
        raise ConfigError(
            "fit_genome() reads the compendium from a zarr store in every task: pass the "
            "store's path, or the Dataset returned by avocado_xr.open_compendium(path)."
        )
    return source


def fit_genome(
    ds,
    store: str | os.PathLike,
    *,
    model: AvocadoModel | None = None,
    regions=None,
    epochs: int = 200,
    phase1_epochs: int = 800,
    chroms=None,
    device: str | None = None,
    seed: int = 0,
    precision: str = "float32",
    sampler: str = "blocks",
    tracks_per_block: int | None = None,
    retries: int = 3,
    verbose: bool = False,
    **hyperparameters,
) -> AvocadoModel:
    """Train a genome-wide Avocado model: phase 1 on ``regions``, phase 2 per chromosome.

    Parameters
    ----------
    ds : str, path or xarray.Dataset
        The genome-wide compendium: a zarr store written by :func:`avocado_xr.ingest` or
        :func:`avocado_xr.save_compendium`, or the Dataset :func:`avocado_xr.open_compendium`
        returned for it (every task opens the store itself).
    store : str or path
        The genome-factor store to write (created; an existing one of the same layout is
        resumed). The returned model refers to it.
    model : AvocadoModel, optional
        A phase-1 model. Default: train one with :func:`avocado_xr.fit` on ``regions``.
    regions : BED path, DataFrame or iterable of (chrom, start, end), optional
        Phase 1's positions (the bins of ``ds`` overlapping them). Required without
        ``model``; the paper used the ENCODE pilot regions
        (:func:`avocado_xr.datasets.pilot_regions`).
    epochs : int
        Phase-2 epochs per chromosome. Default is 200 (the paper's).
    phase1_epochs : int
        Phase-1 epochs. Default is 800 (the paper's).
    chroms : list of str, optional
        Chromosomes to fit now (default: all); the others can follow in later calls.
    device : str, optional
        ``"cpu"`` or ``"cuda"`` (each task claims a ``GPU`` worker resource). Default: CUDA
        when the worker has it.
    seed : int
        Seeds phase 1 and, combined with the chromosome name, each phase-2 task.
    precision : {"float32", "bfloat16"}
        Matmul precision. Default is "float32".
    sampler : {"blocks", "resident", "auto"}
        Phase 2's sampler (see :func:`avocado_xr.fit`); ``"blocks"`` (default) bounds a
        task's memory by one data block.
    tracks_per_block : int, optional
        Tracks read per block by the block sampler (default: all).
    retries : int
        Retries of a failed chromosome task on a distributed client. Default is 3.
    verbose : bool
        Progress: epochs of phase 1, chromosomes of phase 2.
    **hyperparameters
        Phase 1's model options (see :func:`avocado_xr.fit`), e.g. ``n_layers=1``.

    Returns
    -------
    AvocadoModel
        A genome-wide model: the phase-1 head in memory, the genome factors in ``store``;
        ``training_info["genome_history"]`` holds the phase-2 history of every chromosome.

    Examples
    --------
    >>> import os, tempfile, avocado_xr as ax
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "sim.zarr")
    >>> _ = ax.save_compendium(ax.testing.simulate_compendium(n_positions=2_000), path)
    >>> model = ax.fit_genome(path, os.path.join(folder, "factors.zarr"),
    ...                       regions=[("chr1", 0, 10_000)], phase1_epochs=2, epochs=1,
    ...                       n_layers=1, n_nodes=8, batch_size=500, device="cpu")
    >>> sorted(model.training_info["genome_history"]), model.genome is not None
    (['chr1', 'chr2'], True)
    >>> model.impute(merge=False).imputed.shape
    (4, 3, 2000)
    """
    from ..store import open_compendium

    path = _compendium_path(ds)
    compendium = open_compendium(path)
    layout = layout_of(compendium)
    if model is None:
        if regions is None:
            raise ConfigError(
                "fit_genome() needs a phase-1 model=, or regions= to train one on (the paper: "
                "the ENCODE pilot regions, avocado_xr.datasets.pilot_regions())."
            )
        phase1 = _select_regions(compendium, layout, regions)
        model = fit(
            phase1, epochs=phase1_epochs, device=device, seed=seed, precision=precision,
            verbose=verbose, **hyperparameters,
        )  # fmt: skip
    elif hyperparameters:
        raise ConfigError(f"{sorted(hyperparameters)} are phase-1 options; model= is trained.")
    factors = GenomeFactorStore.create(store, layout, _widths(model))
    chroms = factors.chroms if chroms is None else [str(c) for c in chroms]
    unknown = [c for c in chroms if c not in factors.chroms]
    if unknown:
        raise ConfigError(f"Chromosomes {unknown} are not in the compendium ({factors.chroms}).")
    job = _Job(
        compendium=path,
        factors=str(factors.path),
        head={k: v.detach().cpu().numpy() for k, v in model.head.state_dict().items()},
        config=model.config.to_dict(),
        celltypes=tuple(model.celltypes),
        assays=tuple(model.assays),
        epochs=int(epochs),
        seed=int(seed),
        device=device,
        precision=precision,
        sampler=sampler,
        tracks_per_block=tracks_per_block,
        batch_size=model.config.batch_size,
    )
    pending = [c for c in chroms if factors.done(c) is None]
    _run(job, pending, retries=retries, verbose=verbose)
    head = copy.deepcopy(model.head).cpu().eval()
    history = {c: factors.done(c)["history"] for c in factors.chroms if factors.done(c)}
    return AvocadoModel(
        None,
        model.config,
        head=head,
        genome=factors,
        celltypes=model.celltypes,
        assays=model.assays,
        layout=layout,
        history=list(model.history),
        training_info={
            **model.training_info,
            "phase2_epochs": int(epochs),
            "genome_history": history,
        },
    )


def _widths(model: AvocadoModel) -> tuple[int, int, int]:
    cfg = model.config
    return cfg.n_25bp_factors, cfg.n_250bp_factors, cfg.n_5kbp_factors


def _select_regions(ds: xr.Dataset, layout: GenomeLayout, regions) -> xr.Dataset:
    """The positions of ``ds`` overlapping a region set (O(regions + segments))."""
    from ..bed import read_bed

    ranges = []
    for chrom, lo, hi in read_bed(regions)[["chrom", "start", "end"]].itertuples(index=False):
        ranges += layout.interval(str(chrom), int(lo), int(hi))
    if not ranges:
        raise ConfigError("No position of the compendium overlaps the phase-1 regions.")
    positions = np.unique(np.concatenate([np.arange(a, b) for a, b in ranges]))
    return ds.isel({DIM_POSITION: positions})


def _run(job: _Job, chroms: list[str], *, retries: int, verbose: bool) -> None:
    """One task per chromosome: on the active distributed client, else one after another."""
    if not chroms:
        return
    client = active_client()
    if client is None:
        for chrom in progress(chroms, desc="chromosomes", total=len(chroms), verbose=verbose):
            _fit_chromosome(job, chrom)
        return
    from distributed import as_completed

    resources = {"GPU": 1} if job.device and job.device.startswith("cuda") else None
    tasks = [
        dask.delayed(_fit_chromosome, pure=False)(job, c, dask_key_name=f"fit-genome-{c}")
        for c in chroms
    ]
    futures = client.compute(tasks, retries=retries, resources=resources)
    done = progress(as_completed(futures), desc="chromosomes", total=len(chroms), verbose=verbose)
    for future in done:
        future.result()  # raises the task's error, if any


def _fit_chromosome(job: _Job, chrom: str) -> dict:
    """Phase 2 on one chromosome; returns its record (also written as its ``done`` marker)."""
    from ..store import open_compendium

    factors = GenomeFactorStore(job.factors)
    record = factors.done(chrom)
    if record is not None:
        return record
    tic = time.perf_counter()
    ds = open_compendium(job.compendium, validate_store=False)
    first, layout = factors.layout.chromosome(chrom)
    ds = ds.isel({DIM_POSITION: slice(first, first + layout.n_positions)})
    celltypes = [c for c in job.celltypes if c in ds.get_index(DIM_CELLTYPE)]
    assays = [a for a in job.assays if a in ds.get_index(DIM_ASSAY)]
    ds = ds.sel({DIM_CELLTYPE: celltypes, DIM_ASSAY: assays})
    pairs = np.argwhere(np.asarray(ds[OBSERVED].values))
    if len(pairs) == 0:
        raise InvalidSignalError(
            f"No observed track of the model's cell types and assays on {chrom}."
        )
    device = resolve_device(job.device)
    from ..config import AvocadoConfig

    config = AvocadoConfig.from_dict(job.config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(job.seed * 1_000_003 + zlib.crc32(chrom.encode()))
        net = AvocadoNet.from_layout(len(celltypes), len(assays), layout, config)
    net.head.load_state_dict(_rows_of(job, celltypes, assays, config))
    net.to(device)
    optimizers = optimizers_for(net, config, train_head=False)
    sampler = make_sampler(
        ds, pairs, batch_size=job.batch_size, device=device, sampler=job.sampler,
        tracks_per_block=job.tracks_per_block,
    )  # fmt: skip
    checkpoint = Checkpoint(
        Path(job.factors + ".checkpoints") / chrom,
        {
            "chrom": chrom,
            "layout": layout.to_dict(),
            "tracks": [[celltypes[c], assays[a]] for c, a in pairs],
            "config": config.digest(),
            "head": dask.base.tokenize(job.head),
            "seed": job.seed,
            "precision": job.precision,
        },
    )
    history = checkpoint.load(net, optimizers, device, job.epochs)[1]
    run_epochs(
        net, sampler, optimizers, config, epochs=job.epochs, history=history, device=device,
        precision=job.precision, seed=job.seed + zlib.crc32(chrom.encode()), verbose=False,
        checkpoint=checkpoint, desc=chrom,
    )  # fmt: skip
    factors.write(chrom, [t.weight.detach().float().cpu().numpy() for t in net.genome_tables()])
    record = {"chrom": chrom, "history": history, "seconds": time.perf_counter() - tic}
    factors.mark_done(chrom, record)
    return record


def _rows_of(job: _Job, celltypes, assays, config) -> dict:
    """The phase-1 head's state restricted to the cell types and assays present."""
    c_rows = [job.celltypes.index(c) for c in celltypes]
    a_rows = [job.assays.index(a) for a in assays]
    state = {}
    for key, value in job.head.items():
        value = torch.from_numpy(np.asarray(value))
        if key.startswith("celltype"):
            value = value[c_rows]
        elif key.startswith("assay"):
            value = value[a_rows]
        state[key] = value
    if not state:  # pragma: no cover - a head always has parameters
        raise StoreError("The phase-1 head has no parameters.")
    AvocadoHead(len(celltypes), len(assays), config).load_state_dict(state)  # shape check
    return state
