"""Add cell types or assays to a trained model: only their factors are learned.

The paper's Methods ("adding new cell types and assays"; the original's ``fit_celltypes`` and
``fit_assays``): the network, the genome factors and the existing cell type and assay factors
are frozen and only the new rows are learned, from tracks of the new cell types (or assays) in
the model's other assays (cell types). Few parameters are trained and the genome factors are
fixed inputs, so this is fast on a CPU. As in the original, the new rows are trained in a head
of their own that shares the frozen weights, then appended to the model's table, so the
existing rows are bit-identical afterwards. Unlike the original, the result records the tracks
it was trained on (``training_info["train_tracks"]``), so a saved model lists every experiment.
Data are read lazily, block by block (:mod:`avocado_xr.model.transfer_loop`); afterwards
:func:`~avocado_xr.fine_tune` can train everything at a reduced learning rate.
"""

from __future__ import annotations

import copy
import warnings

import torch
import xarray as xr

from .._compat import autocast, resolve_device
from ..config import check_epochs
from ..exceptions import AvocadoXrWarning, ConfigError, InvalidSignalError
from ..variables import DIM_ASSAY, DIM_CELLTYPE, check_names, check_pairs, validate
from .network import AvocadoHead
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

__all__ = ["add_assays", "add_celltypes"]


def add_celltypes(
    model,
    ds: xr.Dataset,
    *,
    celltypes=None,
    epochs: int = 10,
    lr: float | None = None,
    validation=None,
    patience: int | None = None,
    init: str = "mean",
    dropout: bool = False,
    batch_size: int | None = None,
    block_size: int | None = None,
    resident_bytes: int = RESIDENT_BYTES,
    device: str | torch.device | None = None,
    seed: int = 0,
    precision: str = "float32",
    verbose: bool = False,
):
    """A model that also imputes new cell types, learned from their observed tracks.

    Only the new cell type factors are trained; the network, the genome factors and every
    existing cell type and assay factor are frozen (and bit-identical in the result). The new
    model imputes every (cell type, assay) pair, old and new.

    Parameters
    ----------
    model : AvocadoModel
        A trained (or imported) model; it is not modified.
    ds : xarray.Dataset
        A compendium (e.g. lazily from zarr) with observed tracks of the new cell types in
        assays the model knows, over any positions the model knows (others are ignored).
        Cell types the model already has are ignored.
    celltypes : str or list of str, optional
        The cell types to add (default: every cell type of ``ds`` the model lacks that has an
        observed track in one of the model's assays).
    epochs : int
        Passes over the positions (each visits every position once with a random training
        track of the new cell types). Default is 10.
    lr : float, optional
        Adam learning rate. Default: ``model.config.lr``.
    validation : list of (celltype, assay), optional
        Observed tracks of the new cell types to hold out: their MSE is recorded after every
        epoch (``val_mse``), and the factors of the best epoch are kept.
    patience : int, optional
        With ``validation``: stop after this many epochs without improvement.
    init : {"mean", "random"}
        Start the new factors at the mean of the existing cell types' (the average cell type:
        converges in fewer epochs), or drawn like a new model's (``U(-embedding_init,
        embedding_init)``). Default is "mean".
    dropout : bool
        Train with the network's dropout (as it was trained) instead of in eval mode (as it
        predicts). Default is False.
    batch_size : int, optional
        Default: ``model.config.batch_size``.
    block_size : int, optional
        Positions read per block (default: the Dask chunk size of ``ds``, else 131,072).
    resident_bytes : int
        Keep the blocks (tracks and genome features) in memory after the first epoch when they
        take at most this many bytes. Default is 2 GiB.
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    seed : int
        Seeds initialisation and sampling (CPU runs are deterministic). Default is 0.
    precision : {"float32", "bfloat16"}
        Matmul precision. Default is "float32".
    verbose : bool
        Progress bars. Default is False.

    Returns
    -------
    AvocadoModel
        The cell types of ``model`` followed by the new ones; ``history`` continues with one
        record per epoch (``stage="add-celltypes"``), ``training_info["train_tracks"]`` lists
        the new tracks too, and ``training_info["stages"]`` records the step.

    Raises
    ------
    ConfigError
        A cell type to add is already in the model, or an option is out of range.
    InvalidSignalError
        A new cell type has no observed track in the model's assays.
    RegionError
        ``ds`` shares no position with the model.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=2_000, seed=0)
    >>> base = ax.fit(ds.sel(celltype=["C0", "C1", "C2"]), epochs=2, n_layers=1, n_nodes=16,
    ...               batch_size=500, device="cpu")
    >>> model = base.add_celltypes(ds, epochs=2, device="cpu")
    >>> model.celltypes
    ['C0', 'C1', 'C2', 'C3']
    >>> model.impute(ds, celltypes="C3", merge=False).imputed.shape
    (1, 3, 2000)
    """
    return _add(
        model, ds, DIM_CELLTYPE, celltypes, epochs=epochs, lr=lr, validation=validation,
        patience=patience, init=init, dropout=dropout, batch_size=batch_size,
        block_size=block_size, resident_bytes=resident_bytes, device=device, seed=seed,
        precision=precision, verbose=verbose,
    )  # fmt: skip


def add_assays(
    model,
    ds: xr.Dataset,
    *,
    assays=None,
    epochs: int = 10,
    lr: float | None = None,
    validation=None,
    patience: int | None = None,
    init: str = "mean",
    dropout: bool = False,
    batch_size: int | None = None,
    block_size: int | None = None,
    resident_bytes: int = RESIDENT_BYTES,
    device: str | torch.device | None = None,
    seed: int = 0,
    precision: str = "float32",
    verbose: bool = False,
):
    """A model that also imputes new assays, learned from their observed tracks.

    The assay counterpart of :func:`add_celltypes` (same options): only the new assay factors
    are trained, from tracks of the new assays in cell types the model knows; everything else
    is frozen and bit-identical in the result.

    Examples
    --------
    >>> import avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=2_000, seed=0)
    >>> base = ax.fit(ds.sel(assay=["A0", "A1"]), epochs=2, n_layers=1, n_nodes=16,
    ...               batch_size=500, device="cpu")
    >>> model = base.add_assays(ds, epochs=2, device="cpu")
    >>> model.assays, [s["stage"] for s in model.training_info["stages"]]
    (['A0', 'A1', 'A2'], ['add-assays'])
    """
    return _add(
        model, ds, DIM_ASSAY, assays, epochs=epochs, lr=lr, validation=validation,
        patience=patience, init=init, dropout=dropout, batch_size=batch_size,
        block_size=block_size, resident_bytes=resident_bytes, device=device, seed=seed,
        precision=precision, verbose=verbose,
    )  # fmt: skip


def _add(
    model, ds, axis, names, *, epochs, lr, validation, patience, init, dropout, batch_size,
    block_size, resident_bytes, device, seed, precision, verbose,
):  # fmt: skip
    what = "add_celltypes" if axis == DIM_CELLTYPE else "add_assays"
    stage = what.replace("_", "-")
    check_transferable(model, what)
    validate(ds)
    epochs, patience = check_epochs(epochs), check_patience(patience)
    if init not in ("mean", "random"):
        raise ConfigError(f"init must be 'mean' or 'random', got {init!r}")
    device = resolve_device(device)
    autocast(device, precision)  # validates precision early
    config = model.config
    lr = config.lr if lr is None else float(lr)
    if lr <= 0:
        raise ConfigError(f"lr must be positive, got {lr}")
    batch_size = config.batch_size if batch_size is None else int(batch_size)
    ds_c, ds_a, observed = observed_table(ds)
    names, train, held = _new_tracks(model, axis, names, validation, ds_c, ds_a, observed)
    runs = model_runs(ds, model)
    old_head = model.head
    n_c = len(model.celltypes) if axis == DIM_ASSAY else len(names)
    n_a = len(model.assays) if axis == DIM_CELLTYPE else len(names)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sub = AvocadoHead(n_c, n_a, config)
    keys = _axis_keys(sub, axis)
    state = {k: v.detach().cpu().clone() for k, v in old_head.state_dict().items()}
    fresh = sub.state_dict()
    for k in keys:
        if init == "mean":
            fresh[k] = state[k].mean(0, keepdim=True).expand_as(fresh[k]).clone()
        state[k] = fresh[k]
    sub.load_state_dict(state)
    sub.to(device)
    params = []
    for k, p in sub.named_parameters():
        p.requires_grad_(k in keys)
        if k in keys:
            params.append(p)

    def rows_of(pairs):
        if axis == DIM_CELLTYPE:
            return [(names.index(c), model.assays.index(a)) for c, a in pairs]
        return [(model.celltypes.index(c), names.index(a)) for c, a in pairs]

    def ds_rows(pairs):
        return [(ds_c.index(c), ds_a.index(a)) for c, a in pairs]

    features = frozen_features(model)
    width = config.n_genome_factors
    data = PositionBlocks(
        ds, ds_rows(train), runs, block_size=block_size, features=features,
        resident_bytes=resident_bytes, width=width,
    )  # fmt: skip
    trainer = StageTrainer(
        sub, config, rows_of(train), data, params=params, lr=lr, device=device,
        precision=precision, seed=seed, dropout=dropout, batch_size=batch_size,
    )  # fmt: skip
    validate_fn = None
    if held:
        val_data = PositionBlocks(
            ds, ds_rows(held), runs, block_size=block_size, features=features,
            resident_bytes=resident_bytes, width=width,
        )  # fmt: skip
        val_rows = rows_of(held)
        validate_fn = lambda: track_mse(sub, val_rows, val_data, features, device, precision)  # noqa: E731

    def snapshot():
        return {k: sub.state_dict()[k].detach().clone() for k in keys}

    initial = snapshot()

    def restore(best):
        sub.load_state_dict({**sub.state_dict(), **(best or initial)})

    history = copy.deepcopy(model.history)
    best_epoch, best_val, first_val = train_stage(
        trainer, epochs=epochs, validate_fn=validate_fn, patience=patience, snapshot=snapshot,
        restore=restore, verbose=verbose, history=history, stage=stage,
    )  # fmt: skip

    # the model's rows followed by the new ones: existing rows are copied, bit for bit
    n_rows_c = len(model.celltypes) + (len(names) if axis == DIM_CELLTYPE else 0)
    n_rows_a = len(model.assays) + (len(names) if axis == DIM_ASSAY else 0)
    head = AvocadoHead(n_rows_c, n_rows_a, config)
    learned = sub.state_dict()
    merged = dict(state)
    for k in keys:
        merged[k] = torch.cat([old_head.state_dict()[k].detach().cpu(), learned[k].cpu()])
    head.load_state_dict(merged)
    head_device = next(old_head.parameters()).device
    head.to(head_device).eval()
    extra = {
        axis + "s": list(names),
        "tracks": [f"{c}/{a}" for c, a in train],
        "validation_tracks": [f"{c}/{a}" for c, a in held],
        "epochs": len(history) - len(model.history),
        "positions": data.n_positions,
        "lr": lr,
        "init": init,
    }
    if held:
        extra.update(best_epoch=best_epoch, val_mse=best_val)
    info = updated_info(model, train, held, stage, extra)
    celltypes = model.celltypes + (list(names) if axis == DIM_CELLTYPE else [])
    assays = model.assays + (list(names) if axis == DIM_ASSAY else [])
    return with_head(model, head, celltypes, assays, history, info)


def _new_tracks(model, axis, names, validation, ds_c, ds_a, observed):
    """The names to add and their training and held-out tracks, as (celltype, assay) pairs
    (only tracks in the model's other axis can train them: the rest are skipped with a
    warning)."""
    what = "add_celltypes" if axis == DIM_CELLTYPE else "add_assays"
    old = model.celltypes if axis == DIM_CELLTYPE else model.assays
    other = model.assays if axis == DIM_CELLTYPE else model.celltypes
    ds_new, ds_other = (ds_c, ds_a) if axis == DIM_CELLTYPE else (ds_a, ds_c)
    table = observed if axis == DIM_CELLTYPE else observed.T  # (axis, other) in ds labels
    other_in_ds = [j for j, name in enumerate(ds_other) if name in other]
    if names is None:
        names = [n for i, n in enumerate(ds_new) if n not in old and table[i, other_in_ds].any()]
        if not names:
            raise InvalidSignalError(
                f"The compendium has no {axis} that the model lacks with an observed track in "
                f"the model's {'assays' if axis == DIM_CELLTYPE else 'cell types'}; nothing to "
                "add."
            )
    else:
        names = check_names(names, ds_new, axis)
        known = [n for n in names if n in old]
        if known:
            raise ConfigError(
                f"{known} are already in the model ({what} learns new {axis}s only; the "
                "existing factors stay frozen). Fine-tune them with fine_tune() instead."
            )
        if len(set(names)) != len(names):
            raise ConfigError(f"{names} lists a {axis} more than once.")
    # training tracks, as (name, other name) in ds order
    candidates, skipped = [], []
    for name in names:
        i = ds_new.index(name)
        for j, other_name in enumerate(ds_other):
            if table[i, j]:
                (candidates if other_name in other else skipped).append((name, other_name))
    if skipped:
        warnings.warn(
            f"Tracks {skipped[:5]}{'...' if len(skipped) > 5 else ''} are in "
            f"{'assays' if axis == DIM_CELLTYPE else 'cell types'} the model does not know, so "
            f"they cannot train the new {axis} factors; add those "
            f"{'assays' if axis == DIM_CELLTYPE else 'cell types'} afterwards.",
            AvocadoXrWarning,
            stacklevel=4,
        )
    as_pair = (lambda n, o: (n, o)) if axis == DIM_CELLTYPE else (lambda n, o: (o, n))
    tracks = [as_pair(n, o) for n, o in candidates]
    held = []
    if validation is not None:
        for pair in check_pairs(validation, "validation"):
            if pair not in tracks:
                raise InvalidSignalError(
                    f"Validation track {pair} is not an observed track of a {axis} being added "
                    f"in the model's {'assays' if axis == DIM_CELLTYPE else 'cell types'}."
                )
            held.append(pair)
    train = [t for t in tracks if t not in held]
    key = 0 if axis == DIM_CELLTYPE else 1
    lonely = [n for n in names if not any(t[key] == n for t in train)]
    if lonely:
        raise InvalidSignalError(
            f"{lonely} have no observed training track in the model's "
            f"{'assays' if axis == DIM_CELLTYPE else 'cell types'}"
            f"{' (besides the validation tracks)' if held else ''}; their factors could not be "
            "learned."
        )
    return names, train, held


def _axis_keys(head: AvocadoHead, axis: str) -> list[str]:
    """State-dict keys of the cell type (or assay) rows of a head."""
    name = "celltype" if axis == DIM_CELLTYPE else "assay"
    return [k for k in head.state_dict() if k.split(".")[0] in (name, f"{name}_bias")]
