"""Fine-tune a model at a reduced learning rate with held-out validation and early stopping.

ChromTransfer's recipe (pretrain, then fine-tune at a lower learning rate), e.g. after
:func:`~avocado_xr.add_celltypes` has fitted a new cell type's factors: every parameter, or
those not in ``freeze``, is trained further on the tracks given, and held-out validation tracks
are scored before training and after every epoch. The weights of the best epoch are kept, and
those of the model given when no epoch improves on it, so fine-tuning never makes the held-out
error worse; ``training_info["fine_tune"]`` says whether it helped. Frozen groups stay
bit-identical (the original's ``load`` ignores its freeze arguments).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import xarray as xr

from .._compat import autocast, resolve_device
from ..config import AvocadoConfig, check_epochs
from ..exceptions import ConfigError, InvalidSignalError
from ..variables import check_pairs, validate
from .transfer_loop import (
    RESIDENT_BYTES,
    PositionBlocks,
    StageTrainer,
    check_patience,
    check_transferable,
    frozen_features,
    model_runs,
    observed_table,
    track_mse,
    train_stage,
    updated_info,
    with_head,
)

__all__ = ["FREEZABLE", "fine_tune"]

#: parameter groups :func:`fine_tune` can freeze
FREEZABLE = ("celltypes", "assays", "network", "genome")


def fine_tune(
    model,
    ds: xr.Dataset,
    *,
    validation,
    epochs: int = 10,
    lr: float | None = None,
    patience: int | None = 2,
    freeze=None,
    tracks=None,
    batch_size: int | None = None,
    block_size: int | None = None,
    resident_bytes: int = RESIDENT_BYTES,
    device: str | torch.device | None = None,
    seed: int = 0,
    precision: str = "float32",
    verbose: bool = False,
):
    """Fine-tune a model's parameters at a reduced learning rate, with early stopping.

    ChromTransfer's recipe (pretrain, then fine-tune at a lower learning rate), e.g. after
    :func:`add_celltypes` has fitted the new factors: every parameter not in ``freeze`` is
    trained on the observed tracks of ``ds`` the model knows (or ``tracks``), with the network's
    dropout, and the held-out ``validation`` tracks are scored before training and after every
    epoch. The weights of the best epoch are kept; if no epoch beats the model given, its
    weights are returned unchanged. ``training_info["fine_tune"]`` reports the held-out MSE
    before and after and whether fine-tuning helped.

    Only the cell types in ``ds`` are trained on: fine-tuning the network on a new cell type
    alone can make the others' imputations worse without the validation tracks noticing. To
    keep them, pass a compendium with tracks of the other cell types too, or freeze the
    network (``freeze=("network", "genome")`` adapts only the factors).

    Parameters
    ----------
    model : AvocadoModel
        The model to start from; it is not modified.
    ds : xarray.Dataset
        A compendium over any positions the model knows (others are ignored).
    validation : list of (celltype, assay)
        Observed tracks of ``ds`` to hold out and score (required: they decide whether
        fine-tuning helped).
    epochs : int
        At most this many passes over the positions. Default is 10.
    lr : float, optional
        Learning rate. Default: a tenth of ``model.config.lr``.
    patience : int or None
        Stop after this many epochs without a better validation MSE. Default is 2.
    freeze : iterable of {"celltypes", "assays", "network", "genome"}, optional
        Parameter groups to keep fixed. Default: none for in-memory models; ``("genome",)``
        for genome-wide models, whose genome factors are trained by
        :func:`~avocado_xr.fit_genome`. Frozen groups are bit-identical in the result.
    tracks : list of (celltype, assay), optional
        Train on these observed tracks only (default: every observed track of ``ds`` in the
        model's cell types and assays, except ``validation``).
    batch_size, block_size, resident_bytes, device, seed, precision, verbose
        As in :func:`add_celltypes`.

    Returns
    -------
    AvocadoModel

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=2_000, seed=0)
    >>> base = ax.fit(ds.sel(celltype=["C0", "C1", "C2"]), epochs=2, n_layers=1, n_nodes=16,
    ...               batch_size=500, device="cpu")
    >>> added = base.add_celltypes(ds.avocado.mask([("C3", "A2")]), epochs=2, device="cpu")
    >>> tuned = added.fine_tune(ds, validation=[("C3", "A2")], epochs=2, device="cpu")
    >>> report = tuned.training_info["fine_tune"]
    >>> report["val_mse_after"] <= report["val_mse_before"], report["validation_tracks"]
    (True, ['C3/A2'])
    """
    check_transferable(model, "fine_tune")
    validate(ds)
    epochs, patience = check_epochs(epochs), check_patience(patience)
    device = resolve_device(device)
    autocast(device, precision)
    config: AvocadoConfig = model.config
    lr = config.lr / 10 if lr is None else float(lr)
    if lr <= 0:
        raise ConfigError(f"lr must be positive, got {lr}")
    batch_size = config.batch_size if batch_size is None else int(batch_size)
    genome_wide = model.genome is not None
    if freeze is None:
        freeze = ("genome",) if genome_wide else ()
    freeze = (freeze,) if isinstance(freeze, str) else tuple(freeze)
    unknown = [f for f in freeze if f not in FREEZABLE]
    if unknown:
        raise ConfigError(f"freeze takes groups among {FREEZABLE}, got {unknown}.")
    if genome_wide and "genome" not in freeze:
        raise ConfigError(
            "The genome factors of a genome-wide model live in its zarr store and are trained "
            "per chromosome by fit_genome(); fine-tune the rest with freeze=('genome',)."
        )
    if set(FREEZABLE) <= set(freeze):
        raise ConfigError("freeze lists every parameter group: there is nothing to fine-tune.")

    ds_c, ds_a, observed = observed_table(ds)
    known = [
        (c, a)
        for i, c in enumerate(ds_c)
        for j, a in enumerate(ds_a)
        if observed[i, j] and c in model.celltypes and a in model.assays
    ]
    if validation is None:
        raise ConfigError(
            "fine_tune() needs validation= tracks to hold out: they decide whether "
            "fine-tuning helped and when to stop."
        )
    held = check_pairs(validation, "validation")
    bad = [p for p in held if p not in known]
    if bad:
        raise InvalidSignalError(
            f"Validation tracks {bad} are not observed tracks of the compendium in the model's "
            "cell types and assays."
        )
    if tracks is None:
        train = [t for t in known if t not in held]
    else:
        train = check_pairs(tracks, "tracks")
        bad = [p for p in train if p not in known or p in held]
        if bad:
            raise InvalidSignalError(
                f"Tracks {bad} are not observed tracks of the compendium in the model's cell "
                "types and assays, or are validation tracks."
            )
    if not train:
        raise InvalidSignalError("No observed track is left to fine-tune on.")
    runs = model_runs(ds, model)

    if genome_wide:
        net, head = None, copy.deepcopy(model.head).float()
    else:
        net = copy.deepcopy(model.net).float()
        head = net.head
    (net if net is not None else head).to(device)
    groups = {
        "celltypes": ("celltype", "celltype_bias"),
        "assays": ("assay", "assay_bias"),
        "network": ("hidden", "output"),
    }
    params = []
    for name, p in head.named_parameters():
        group = next(g for g, prefixes in groups.items() if name.split(".")[0] in prefixes)
        p.requires_grad_(group not in freeze)
        if group not in freeze:
            params.append(p)
    train_genome = net is not None and "genome" not in freeze
    if net is not None:
        for table in net.genome_tables():
            table.weight.requires_grad_(False)

    def rows_of(pairs):
        return [(model.celltypes.index(c), model.assays.index(a)) for c, a in pairs]

    def ds_rows(pairs):
        return [(ds_c.index(c), ds_a.index(a)) for c, a in pairs]

    if net is not None:

        @torch.no_grad()
        def features(positions: np.ndarray) -> torch.Tensor:
            index = torch.as_tensor(np.asarray(positions), device=device)
            return net.genome_features(index).float().cpu()

    else:
        features = frozen_features(model)
    width = config.n_genome_factors
    data = PositionBlocks(
        ds, ds_rows(train), runs, block_size=block_size,
        features=None if train_genome else features, resident_bytes=resident_bytes, width=width,
    )  # fmt: skip
    val_data = PositionBlocks(
        ds, ds_rows(held), runs, block_size=block_size,
        features=None if train_genome else features, resident_bytes=resident_bytes, width=width,
    )  # fmt: skip
    trainer = StageTrainer(
        head, config, rows_of(train), data, params=params, lr=lr, device=device,
        precision=precision, seed=seed, dropout=True, batch_size=batch_size,
        genome_net=net if train_genome else None,
    )  # fmt: skip

    def validate_fn():
        return track_mse(head, rows_of(held), val_data, features, device, precision)

    def snapshot():
        state = {"head": {k: v.detach().clone() for k, v in head.state_dict().items()}}
        if train_genome:
            state["genome"] = [t.weight.detach().clone() for t in net.genome_tables()]
        return state

    initial = snapshot()

    def restore(best):
        best = best or initial
        head.load_state_dict(best["head"])
        if train_genome:
            with torch.no_grad():
                for table, values in zip(net.genome_tables(), best["genome"], strict=True):
                    table.weight.copy_(values)

    history = copy.deepcopy(model.history)
    best_epoch, best_val, first_val = train_stage(
        trainer, epochs=epochs, validate_fn=validate_fn, patience=patience, snapshot=snapshot,
        restore=restore, verbose=verbose, history=history, stage="fine-tune",
    )  # fmt: skip
    for p in head.parameters():
        p.requires_grad_(True)
    if net is not None:
        for table in net.genome_tables():
            table.weight.requires_grad_(True)
    report = {
        "lr": lr,
        "freeze": list(freeze),
        "tracks": [f"{c}/{a}" for c, a in train],
        "validation_tracks": [f"{c}/{a}" for c, a in held],
        "epochs": len(history) - len(model.history),
        "best_epoch": best_epoch,
        "val_mse_before": first_val,
        "val_mse_after": best_val,
        "helped": best_epoch > 0,
    }
    info = updated_info(model, train, held, "fine-tune", report)
    info["fine_tune"] = report
    head_device = next(model.head.parameters()).device
    if net is not None:
        net.to(head_device)
        return with_head(model, net.head, model.celltypes, model.assays, history, info, net)
    head.to(head_device).eval()
    return with_head(model, head, model.celltypes, model.assays, history, info)
