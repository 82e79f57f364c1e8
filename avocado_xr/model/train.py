"""Training: ``fit(ds, ...)`` learns an Avocado model from a (lazy) compendium."""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from .._compat import autocast, resolve_device, reuse_freed_memory
from .._progress import progress
from ..average import average_of_others
from ..config import AvocadoConfig, check_epochs
from ..coords import dataset_layout
from ..exceptions import AvocadoXrWarning, ConfigError, InvalidSignalError
from ..variables import (
    DIM_ASSAY,
    DIM_CELLTYPE,
    OBSERVED,
    check_names,
    check_pairs,
    validate,
)
from .avocado import AvocadoModel
from .checkpoint import Checkpoint
from .network import AvocadoNet, with_average
from .optim import RowAdam, gather_genome
from .sampler import TrackReader, make_sampler

__all__ = ["fit", "optimizers_for", "run_epochs"]

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(AvocadoConfig)}


def fit(
    ds: xr.Dataset,
    *,
    epochs: int = 10,
    validation: Sequence[tuple[str, str]] | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    verbose: bool = False,
    checkpoint: str | os.PathLike | None = None,
    block_size: int | None = None,
    sampler: str = "auto",
    tracks_per_block: int | None = None,
    precision: str = "float32",
    config: AvocadoConfig | None = None,
    **hyperparameters,
) -> AvocadoModel:
    """Fit an Avocado model to the observed tracks of a compendium.

    One epoch visits every position once, each with a randomly chosen observed experiment
    (the paper's definition). Minibatches are drawn block by block from ``ds`` (lazily for
    Dask/zarr-backed data, the next block read while the current one trains), so memory is
    bounded by the block size plus the model's embedding tables.

    Parameters
    ----------
    ds : xarray.Dataset
        The compendium (see :func:`avocado_xr.validate`).
    epochs : int
        Passes over the position axis. Default is 10.
    validation : list of (celltype, assay), optional
        Observed tracks to hold out of training; their mean squared error is measured after
        every epoch and recorded in ``model.history``.
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    seed : int
        Seeds initialisation, sampling and dropout; on CPU the same seed gives the same
        model. Default is 0.
    verbose : bool
        Show tqdm progress bars. Default is False.
    checkpoint : str or path, optional
        Directory for a checkpoint written after every epoch (checked before training
        starts). If it already holds a checkpoint of the same run (same data layout, tracks,
        configuration, seed and precision), training resumes after its last epoch instead of
        restarting; a checkpoint of another run, of more epochs than ``epochs``, or a corrupt
        one is refused with :class:`~avocado_xr.exceptions.CheckpointError`.
    block_size : int, optional
        Positions read per block (default: the zarr/Dask chunk size along ``position``).
    sampler : {"auto", "resident", "blocks"}
        How epochs are drawn (see :mod:`avocado_xr.model.sampler`): ``"resident"`` holds the
        training tracks on the device and draws each epoch as one permutation;
        ``"blocks"`` streams position blocks from the (zarr) compendium; ``"auto"``
        (default) is resident when the training tracks take at most 4 GiB as float32.
    tracks_per_block : int, optional
        With ``sampler="blocks"``: observed tracks read per block, drawn at random, so the
        cost of a block does not grow with the number of tracks (default: all of them).
    precision : {"float32", "bfloat16"}
        Matmul precision. ``"bfloat16"`` autocasts the network (several times faster on
        CPUs with AVX512-BF16/AMX and on GPUs). Default is "float32".
    config : AvocadoConfig, optional
        Hyperparameters; keyword arguments named like its fields override it, e.g.
        ``n_layers=1, n_nodes=128, batch_size=10_000, lr=0.01, dropout=0.5``.

    Returns
    -------
    AvocadoModel
        The trained model, with ``history`` (one dict per epoch: ``loss``, ``val_mse``,
        ``seconds``, ``samples_per_second``).

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=2_000, seed=0)
    >>> model = ax.fit(ds, epochs=2, n_layers=1, n_nodes=16, batch_size=500,
    ...                validation=[("C1", "A0")], device="cpu")
    >>> [sorted(h) for h in model.history][:1]
    [['epoch', 'loss', 'samples_per_second', 'seconds', 'val_mse']]
    """
    validate(ds)
    unknown = set(hyperparameters) - _CONFIG_FIELDS
    if unknown:
        raise ConfigError(
            f"fit() got unknown keyword(s) {sorted(unknown)}; hyperparameters are "
            f"{sorted(_CONFIG_FIELDS)}."
        )
    config = (config or AvocadoConfig()).replace(**hyperparameters)
    epochs = check_epochs(epochs)
    device = resolve_device(device)
    autocast(device, precision)  # validates precision early

    celltypes = [str(c) for c in ds.get_index(DIM_CELLTYPE)]
    assays = [str(a) for a in ds.get_index(DIM_ASSAY)]
    held_out = _validation_pairs(ds, validation, celltypes, assays)
    observed = np.asarray(ds[OBSERVED].values)
    train_pairs = [
        (i, j) for i, j in np.argwhere(observed) if (celltypes[i], assays[j]) not in held_out
    ]
    if not train_pairs:
        raise InvalidSignalError("No observed track is left for training.")
    _warn_untrained(train_pairs, celltypes, assays)

    layout = dataset_layout(ds)
    sampler = make_sampler(
        ds,
        train_pairs,
        batch_size=config.batch_size,
        device=device,
        sampler=sampler,
        block_size=block_size,
        tracks_per_block=tracks_per_block,
        average=config.average != "none",
    )
    val_reader = None
    if held_out:
        val_idx = [(celltypes.index(c), assays.index(a)) for c, a in held_out]
        val_reader = TrackReader(ds, val_idx, block_size=sampler.reader.block_size)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = AvocadoNet.from_layout(len(celltypes), len(assays), layout, config)
    net.to(device)
    optimizers = optimizers_for(net, config)
    history: list[dict] = []
    ckpt = None
    if checkpoint is not None:
        fingerprint = _fingerprint(config, layout, celltypes, assays, train_pairs, seed, precision)
        ckpt = Checkpoint(checkpoint, fingerprint)
        history = ckpt.load(net, optimizers, device, epochs)[1]

    model = AvocadoModel(
        net,
        config,
        celltypes=celltypes,
        assays=assays,
        layout=layout,
        history=history,
        training_info={
            "seed": seed,
            "precision": precision,
            "train_tracks": [f"{celltypes[i]}/{assays[j]}" for i, j in train_pairs],
            "validation_tracks": [f"{c}/{a}" for c, a in held_out],
            "genome": str(ds.attrs.get("genome", "unknown")),
        },
    )
    run_epochs(
        net,
        sampler,
        optimizers,
        config,
        epochs=epochs,
        history=history,
        device=device,
        precision=precision,
        seed=seed,
        verbose=verbose,
        val_reader=val_reader,
        checkpoint=ckpt,
    )
    return model


def run_epochs(
    net,
    sampler,
    optimizers,
    config,
    *,
    epochs: int,
    history: list[dict],
    device,
    precision: str,
    seed: int,
    verbose: bool,
    val_reader=None,
    checkpoint: Checkpoint | None = None,
    desc: str = "epochs",
) -> list[dict]:
    """Train ``net`` from epoch ``len(history)`` to ``epochs``, appending one record per epoch
    to ``history`` and checkpointing after each; leaves the network in eval mode."""
    first_epoch = len(history)
    epoch_bar = progress(
        range(first_epoch, epochs), desc=desc, verbose=verbose, initial=first_epoch, total=epochs
    )
    for epoch in epoch_bar:
        tic = time.perf_counter()
        with reuse_freed_memory():
            loss = _train_epoch(
                net, sampler, optimizers, config, device, precision, seed, epoch, verbose
            )
        seconds = time.perf_counter() - tic
        record = {
            "epoch": epoch + 1,
            "loss": loss,
            "seconds": seconds,
            "samples_per_second": sampler.n_positions / seconds,
        }
        if val_reader is not None:
            record["val_mse"] = _validation_mse(net, val_reader, sampler, device, precision)
        history.append(record)
        epoch_bar.set_postfix(
            {k: f"{v:.4f}" for k, v in record.items() if "loss" in k or "mse" in k}
        )
        if checkpoint is not None:
            checkpoint.save(net, optimizers, epoch + 1, history)
    net.eval()
    return history


def _validation_pairs(ds, validation, celltypes, assays) -> list[tuple[str, str]]:
    if validation is None:
        return []
    pairs = []
    observed = ds[OBSERVED]
    for celltype, assay in check_pairs(validation, "validation"):
        check_names(celltype, celltypes, DIM_CELLTYPE)
        check_names(assay, assays, DIM_ASSAY)
        if not bool(observed.sel({DIM_CELLTYPE: celltype, DIM_ASSAY: assay})):
            raise InvalidSignalError(
                f"Validation track ({celltype!r}, {assay!r}) is not observed in the data, so "
                "there is nothing to score; pass the compendium before masking it, and fit() "
                "holds the validation tracks out of training itself."
            )
        pairs.append((str(celltype), str(assay)))
    return pairs


def _warn_untrained(train_pairs, celltypes, assays) -> None:
    seen_c = {i for i, _ in train_pairs}
    seen_a = {j for _, j in train_pairs}
    lonely = [celltypes[i] for i in range(len(celltypes)) if i not in seen_c]
    lonely += [assays[j] for j in range(len(assays)) if j not in seen_a]
    if lonely:
        warnings.warn(
            f"{lonely} have no training track; their factors stay at their random "
            "initialisation and their imputations are meaningless.",
            AvocadoXrWarning,
            stacklevel=3,
        )


def optimizers_for(net: AvocadoNet, config: AvocadoConfig, *, train_head: bool = True):
    """Adam on the dense parameters (None with ``train_head=False``: the network, cell type
    and assay factors frozen); lazy row-wise Adam on the genome tables."""
    genome = [table.weight for table in net.genome_tables()]
    genome_ids = {id(p) for p in genome}
    kwargs = {"lr": config.lr, "betas": (0.9, 0.999), "eps": 1e-8}
    dense = None
    if train_head:
        dense = torch.optim.Adam([p for p in net.parameters() if id(p) not in genome_ids], **kwargs)
    else:
        for p in net.head.parameters():
            p.requires_grad_(False)
    return dense, RowAdam([w.data for w in genome], **kwargs)


def _train_epoch(net, sampler, optimizers, config, device, precision, seed, epoch, verbose):
    net.train()
    total = torch.zeros((), dtype=torch.float64, device=device)
    bar = progress(total=len(sampler), desc=f"epoch {epoch + 1}", verbose=verbose, outer=False)
    generator = torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)
    dense, rows = optimizers
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1_000_003 + epoch)
        for batch in sampler.epoch(generator):
            if dense is not None:
                dense.zero_grad(set_to_none=True)
            rows.zero_grad()
            genome = gather_genome(net, rows, batch.position)
            with autocast(device, precision):
                features = with_average(genome, batch.average, config)
                pred = net.head(batch.celltype, batch.assay, features)
            loss = torch.nn.functional.mse_loss(pred.float(), batch.value)
            objective = loss
            if config.genome_l2:
                objective = loss + config.genome_l2 * genome.pow(2).sum(1).mean()
            if config.factor_l2 and dense is not None:
                factors = net.celltype(batch.celltype).pow(2).sum(1).mean()
                factors = factors + net.assay(batch.assay).pow(2).sum(1).mean()
                objective = objective + config.factor_l2 * factors
            objective.backward()
            if dense is not None:
                dense.step()
            rows.step()
            total += loss.detach() * len(batch)  # no device sync per batch
            bar.update()
    bar.close()
    return float(total) / sampler.n_positions


@torch.no_grad()
def _validation_mse(net, reader: TrackReader, train, device, precision) -> float:
    """Mean squared error over all positions of the held-out tracks (block by block)."""
    net.eval()
    sse = torch.zeros((), dtype=torch.float64, device=device)
    n_assays = net.head.assay.num_embeddings
    for (lo, hi), _, values in reader.iter_blocks(range(len(reader.blocks))):
        position = torch.arange(lo, hi, device=device)
        genome = net.genome_features(position)
        if net.config.average != "none":
            sums, counts = train.assay_sums(lo, hi, n_assays)
        for k, (c, a) in enumerate(reader.pairs):
            features = genome
            if net.config.average != "none":  # held-out tracks are not among the donors
                average = torch.from_numpy(average_of_others(sums[a], counts[a]))
                features = with_average(genome, average.to(device), net.config)
            n = hi - lo
            with autocast(device, precision):
                pred = net.head(
                    torch.full((n,), int(c), device=device),
                    torch.full((n,), int(a), device=device),
                    features,
                ).float()
            target = torch.from_numpy(values[k]).to(device)
            sse += ((pred - target) ** 2).sum()
    return float(sse) / (len(reader.pairs) * reader.n_positions)


def _fingerprint(config, layout, celltypes, assays, train_pairs, seed, precision) -> dict:
    return {
        "precision": precision,
        "config": config.digest(),
        "layout": layout.to_dict(),
        "celltypes": celltypes,
        "assays": assays,
        "train_pairs": [[int(i), int(j)] for i, j in train_pairs],
        "seed": int(seed),
    }
