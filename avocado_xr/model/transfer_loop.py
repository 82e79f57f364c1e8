"""The loop shared by :func:`~avocado_xr.add_celltypes`, :func:`~avocado_xr.add_assays` and
:func:`~avocado_xr.fine_tune`: tracks of a compendium at the positions a model knows, read
block by block, and a training stage with held-out validation and early stopping.

Data are read lazily, one block of positions at a time (a Dask compute per block for
zarr-backed compendia, through :class:`~avocado_xr.model.sampler.TrackReader`, the next block
read while the current one trains). The compendium may cover any positions the model knows (a
region, or more than the model: only shared positions are used); they are mapped onto the
model's in O(segments) (:func:`shared_runs`). With frozen genome factors, the genome features of
a block are gathered from the in-memory tables, or read from the genome-factor store of a
genome-wide model: never the whole genome at once. When the blocks' values and features fit in
``resident_bytes`` they are kept in memory after the first epoch. An epoch keeps the paper's
semantics: every known position once, each with a uniformly random training track.
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import xarray as xr

from .._compat import autocast
from .._progress import progress
from ..coords import dataset_layout
from ..exceptions import ConfigError, RegionError
from ..genome import GenomeLayout
from ..variables import DIM_ASSAY, DIM_CELLTYPE, OBSERVED
from .optim import RowAdam, gather_genome
from .sampler import TrackReader

__all__ = [
    "RESIDENT_BYTES",
    "PositionBlocks",
    "StageTrainer",
    "check_patience",
    "check_transferable",
    "frozen_features",
    "model_runs",
    "observed_table",
    "shared_runs",
    "track_mse",
    "train_stage",
    "updated_info",
    "with_head",
]

#: default budget for keeping the blocks (values and genome features) in memory
RESIDENT_BYTES = 2 * 2**30


# ---------------------------------------------------------------------------------- positions


def shared_runs(ds: xr.Dataset, layout: GenomeLayout) -> np.ndarray:
    """The positions of ``ds`` that are also positions of ``layout``, as runs ``(lo, hi,
    model_lo)``: ``ds`` positions ``lo..hi-1`` are model positions ``model_lo..`` (sorted by
    ``lo``; O(segments of both)). Positions of ``ds`` that the model does not know are left
    out (unlike :func:`~avocado_xr.model.impute.position_runs`, which refuses them).

    Examples
    --------
    >>> import xarray as xr
    >>> from avocado_xr.coords import genome_coords
    >>> model = GenomeLayout(("chr1", "chr1"), (0, 1_000), (10, 10))
    >>> ds = xr.Dataset(coords=genome_coords(GenomeLayout(("chr1",), (200, ), (40,))))
    >>> shared_runs(ds, model).tolist()
    [[0, 2, 8], [32, 40, 10]]
    """
    ds_layout = dataset_layout(ds)
    res = layout.resolution
    if ds_layout.resolution != res:
        raise ConfigError(
            f"The compendium has {ds_layout.resolution}-bp bins and the model {res}-bp bins; "
            "ingest the data at the model's resolution."
        )
    runs = []
    for c, s, n, off in zip(
        ds_layout.chrom, ds_layout.start, ds_layout.n_bins, ds_layout.offsets, strict=True
    ):
        end = s + n * res
        for m_lo, m_hi in layout.interval(c, s, end):
            m_start = int(layout.coords_at([m_lo])[1][0])
            lo_bp, hi_bp = max(s, m_start), min(end, m_start + (m_hi - m_lo) * res)
            if (lo_bp - s) % res or (lo_bp - m_start) % res or hi_bp <= lo_bp:
                continue
            first = int(off) + (lo_bp - s) // res
            runs.append((first, first + (hi_bp - lo_bp) // res, m_lo + (lo_bp - m_start) // res))
    runs.sort()
    return np.asarray(runs, dtype=np.int64).reshape(-1, 3)


def _block_map(runs: np.ndarray, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets within ``ds`` block ``[lo, hi)`` of its known positions, and their model
    positions."""
    local, model = [], []
    for a, b, m in runs[(runs[:, 0] < hi) & (runs[:, 1] > lo)]:
        a2, b2 = max(int(a), lo), min(int(b), hi)
        local.append(np.arange(a2 - lo, b2 - lo, dtype=np.int64))
        model.append(np.arange(m + a2 - a, m + b2 - a, dtype=np.int64))
    if not local:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(local), np.concatenate(model)


class PositionBlocks:
    """Tracks of a compendium at the positions a model knows, block by block.

    ``load(k)`` gives block ``k``'s values ``(n_tracks, n)``, model positions ``(n,)`` and,
    with ``features``, their genome features ``(n, n_genome_factors)``; ``iterate(order)``
    yields them with the next block read in a background thread (or from memory once cached).
    """

    def __init__(self, ds, pairs, runs, *, block_size, features, resident_bytes, width):
        self.reader = TrackReader(ds, pairs, block_size=block_size, prefetch=False)
        self.runs = runs
        self.features = features
        blocks, counts = [], []
        for lo, hi in self.reader.blocks:
            hit = runs[(runs[:, 0] < hi) & (runs[:, 1] > lo)]
            n = int((np.minimum(hit[:, 1], hi) - np.maximum(hit[:, 0], lo)).sum())
            if n:
                blocks.append((lo, hi))
                counts.append(n)
        self.blocks, self.counts = blocks, counts
        self.n_positions = int(sum(counts))
        per_position = 4 * (len(self.reader.pairs) + (width if features is not None else 0))
        self._cache = {} if self.n_positions * per_position <= resident_bytes else None

    def __len__(self) -> int:
        return len(self.blocks)

    def load(self, k: int):
        """Block ``k``: ``(values, model positions, features or None)`` as tensors."""
        if self._cache is not None and k in self._cache:
            return self._cache[k]
        lo, hi = self.blocks[k]
        local, model = _block_map(self.runs, lo, hi)
        values = self.reader.load(lo, hi)
        if len(local) != hi - lo:
            values = values[:, local]
        feats = None if self.features is None else self.features(model)
        out = (torch.from_numpy(np.ascontiguousarray(values)), torch.from_numpy(model), feats)
        if self._cache is not None:
            self._cache[k] = out
        return out

    def iterate(self, order):
        """Yield the blocks of ``order``, the next one read in a background thread."""
        order = list(order)
        if not order:
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="avocado-transfer") as pool:
            future = pool.submit(self.load, order[0])
            for i in range(len(order)):
                block = future.result()
                if i + 1 < len(order):
                    future = pool.submit(self.load, order[i + 1])
                yield block


# ---------------------------------------------------------------------------------- training


class StageTrainer:
    """The shared loop of adding and fine-tuning: one epoch visits every known position of the
    training tracks once, each with a random track (the paper's epoch), block by block."""

    def __init__(
        self, head, config, rows, data, *, params, lr, device, precision, seed, dropout,
        genome_net=None, batch_size,
    ):  # fmt: skip
        self.head, self.config, self.data = head, config, data
        self.rows = torch.as_tensor(np.asarray(rows, dtype=np.int64).reshape(-1, 2))
        self.device, self.precision, self.seed, self.dropout = device, precision, seed, dropout
        self.batch_size = int(batch_size)
        kwargs = {"lr": lr, "betas": (0.9, 0.999), "eps": 1e-8}
        self.dense = torch.optim.Adam(params, **kwargs) if params else None
        self.net = genome_net
        self.rows_opt = None
        if genome_net is not None:
            self.rows_opt = RowAdam([t.weight.data for t in genome_net.genome_tables()], **kwargs)

    def epoch(self, epoch: int, verbose: bool) -> float:
        """Train one epoch (seeded by ``seed`` and ``epoch``); returns the mean loss."""
        device, data = self.device, self.data
        self.head.train(self.dropout)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(data), generator=generator).tolist()
        draws = {}
        for k in order:  # drawn up front so the prefetch thread never touches the generator
            n = data.counts[k]
            draws[k] = (
                torch.randperm(n, generator=generator),
                torch.randint(len(self.rows), (n,), generator=generator),
            )
        total = torch.zeros((), dtype=torch.float64)
        bar = progress(total=len(order), desc=f"epoch {epoch + 1}", verbose=verbose, outer=False)
        rows = self.rows.to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + epoch)
            for k, (values, model_pos, feats) in zip(order, data.iterate(order), strict=True):
                perm, pick = draws[k]
                values = values.to(device)
                model_pos = model_pos.to(device)
                feats = None if feats is None else feats.to(device)
                for lo in range(0, len(perm), self.batch_size):
                    idx = perm[lo : lo + self.batch_size].to(device)
                    track = pick[lo : lo + self.batch_size].to(device)
                    position, order_ = model_pos[idx].sort()
                    idx, track = idx[order_], track[order_]
                    target = values[track, idx]
                    total += self._step(rows[track], idx, position, feats, target) * len(idx)
                bar.update()
        bar.close()
        self.head.eval()
        return float(total) / data.n_positions

    def _step(self, rows, idx, position, feats, target) -> torch.Tensor:
        if self.dense is not None:
            self.dense.zero_grad(set_to_none=True)
        if self.rows_opt is not None:
            self.rows_opt.zero_grad()
            genome = gather_genome(self.net, self.rows_opt, position)
        else:
            genome = feats[idx]
        with autocast(self.device, self.precision):
            pred = self.head(rows[:, 0], rows[:, 1], genome)
        loss = torch.nn.functional.mse_loss(pred.float(), target)
        loss.backward()
        if self.dense is not None:
            self.dense.step()
        if self.rows_opt is not None:
            self.rows_opt.step()
        return loss.detach().double().cpu()


@torch.no_grad()
def track_mse(head, rows, data: PositionBlocks, features, device, precision) -> float:
    """Mean squared error of the tracks of ``data`` (rows of ``head``), block by block."""
    head.eval()
    sse = 0.0
    rows = torch.as_tensor(np.asarray(rows, dtype=np.int64).reshape(-1, 2), device=device)
    for values, model_pos, feats in data.iterate(range(len(data))):
        genome = (feats if feats is not None else features(model_pos.numpy())).to(device)
        values = values.to(device)
        n = len(model_pos)
        for k in range(len(rows)):
            with autocast(device, precision):
                pred = head(rows[k, 0].expand(n), rows[k, 1].expand(n), genome).float()
            sse += float(((pred - values[k]) ** 2).sum())
    return sse / (len(rows) * data.n_positions)


def train_stage(
    trainer, *, epochs, validate_fn, patience, snapshot, restore, verbose, history, stage
):
    """Train for ``epochs`` (or until ``patience`` epochs without a better validation MSE),
    appending records to ``history``; restores the best state when validating. Returns
    ``(best_epoch, best_val, first_val)``."""
    best_val = first_val = validate_fn() if validate_fn else None
    best_epoch, best_state, waited = 0, None, 0
    bar = progress(range(epochs), desc=stage, verbose=verbose, total=epochs)
    first = len(history)
    for epoch in bar:
        tic = time.perf_counter()
        loss = trainer.epoch(epoch, verbose)
        seconds = time.perf_counter() - tic
        record = {
            "epoch": first + epoch + 1,
            "stage": stage,
            "stage_epoch": epoch + 1,
            "loss": loss,
            "seconds": seconds,
            "samples_per_second": trainer.data.n_positions / seconds,
        }
        if validate_fn:
            record["val_mse"] = validate_fn()
        history.append(record)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if "loss" in k or "mse" in k})
        if not validate_fn:
            continue
        if record["val_mse"] < best_val:
            best_val, best_epoch, best_state, waited = record["val_mse"], epoch + 1, snapshot(), 0
        else:
            waited += 1
            if patience is not None and waited >= patience:
                break
    if validate_fn and best_epoch != len(history) - first:
        restore(best_state)  # None: the state before training
    return best_epoch, best_val, first_val


# ---------------------------------------------------------------------------------- helpers


def observed_table(ds) -> tuple[list[str], list[str], np.ndarray]:
    """Cell type and assay labels of ``ds`` and its ``(celltype, assay)`` observed table."""
    celltypes = [str(c) for c in ds.get_index(DIM_CELLTYPE)]
    assays = [str(a) for a in ds.get_index(DIM_ASSAY)]
    observed = np.asarray(ds[OBSERVED].transpose(DIM_CELLTYPE, DIM_ASSAY).values, dtype=bool)
    return celltypes, assays, observed


def check_transferable(model, what: str) -> None:
    """Refuse models that take the average of the other cell types as an input."""
    if model.config.average != "none":
        raise ConfigError(
            f"{what} is not available for models that take the average of the other cell types "
            f"(config.average={model.config.average!r}); use a model with average='none'."
        )


def model_runs(ds, model) -> np.ndarray:
    """:func:`shared_runs` of ``ds`` on the model, refusing data that share no position."""
    runs = shared_runs(ds, model.layout)
    if len(runs) == 0:
        chroms = sorted(set(model.layout.chrom))
        raise RegionError(
            f"No position of the compendium is a position of the model (its chromosomes: "
            f"{chroms[:10]}{'...' if len(chroms) > 10 else ''}); pass data over the model's "
            "positions (same assembly and 25-bp bins)."
        )
    return runs


def frozen_features(model):
    """Frozen genome features of model positions, as a float32 tensor (thread-safe reads)."""

    def features(positions: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(model.genome_features(positions)))

    return features


def check_patience(patience) -> int | None:
    """``patience`` as an int (epochs without improvement, >= 1) or None, checked."""
    if patience is None:
        return None
    if isinstance(patience, bool) or not isinstance(patience, int | np.integer) or patience < 1:
        raise ConfigError(f"patience must be an integer >= 1 (epochs) or None, got {patience!r}")
    return int(patience)


def updated_info(model, tracks, validation, stage, extra) -> dict:
    """``model.training_info`` with the stage's training and validation tracks appended to
    its lists (so a saved model lists every experiment it was trained on) and the stage
    recorded in ``stages``."""
    info = copy.deepcopy(model.training_info)
    train = list(info.get("train_tracks", []))
    info["train_tracks"] = train + [t for t in (f"{c}/{a}" for c, a in tracks) if t not in train]
    val = list(info.get("validation_tracks", []))
    info["validation_tracks"] = val + [
        t for t in (f"{c}/{a}" for c, a in validation) if t not in val
    ]
    info.setdefault("stages", []).append({"stage": stage, **extra})
    return info


def with_head(model, head, celltypes, assays, history, info, net=None):
    """A new model: ``model``'s genome factors (copied, or the same store) with ``head``."""
    common = dict(
        celltypes=celltypes, assays=assays, layout=model.layout, history=history,
        training_info=info,
    )  # fmt: skip
    if model.genome is not None:
        return type(model)(None, model.config, head=head, genome=model.genome, **common)
    if net is None:
        net = copy.deepcopy(model.net)
        net.head = head
    net.eval()
    return type(model)(net, model.config, **common)
