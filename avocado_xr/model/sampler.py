"""Training minibatches: the paper's epoch, assembled in torch on the training device.

One epoch visits every position once, each time paired with one observed experiment chosen
uniformly at random (Schreiber et al. 2020, Methods). Two samplers draw it; both return
minibatches as tensors on the training device (CPU or CUDA: the same code), with the indices
generated and the values gathered there, and no Python work per sample.

- :class:`ResidentSampler` holds the observed tracks in memory (on the device), when they fit:
  each epoch is one permutation of all positions and one uniform track per position, exactly
  the paper's epoch; its cost per sample does not depend on the number of tracks.
- :class:`BlockSampler` streams from a lazy (zarr) compendium that does not fit: blocks of
  positions in random order, the next read while the current one trains. A block reads only
  ``tracks_per_block`` observed tracks drawn uniformly without replacement, and each of its
  positions takes one of them uniformly, so every position still gets each observed track with
  probability exactly ``1 / n_tracks`` per epoch, while a block costs ``tracks_per_block``
  chunk reads instead of one per observed track. What changes versus fully random sampling:
  the positions of a block (and so of a minibatch) share that subset of tracks, so one
  minibatch sees at most ``tracks_per_block`` experiments; over an epoch the pairs are
  distributed as in the paper. With ``tracks_per_block >= n_tracks`` the subset is all tracks.

Every block read is checked: a NaN or infinite value in an observed track stops training with
an error naming the track and the genomic range (checking a whole genome-wide store up front
would cost a pass over all of it).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import torch
import xarray as xr

from ..average import assay_totals
from ..exceptions import ConfigError, InvalidSignalError
from ..variables import (
    CHROM,
    DEFAULT_POSITION_CHUNK,
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    RESOLUTION,
    SIGNAL,
    START,
)

__all__ = ["Batch", "BlockSampler", "ResidentSampler", "TrackReader", "make_sampler"]

#: default budget for holding the observed tracks resident (bytes of float32)
RESIDENT_BYTES = 4 * 2**30


@dataclass
class Batch:
    """One minibatch, as tensors on the training device, positions in increasing order."""

    celltype: torch.Tensor
    assay: torch.Tensor
    position: torch.Tensor
    value: torch.Tensor
    #: mean of the same assay over the other observed cell types (``average=True``)
    average: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.value)


class TrackReader:
    """Blocks of positions of chosen tracks, read lazily (one Dask compute per block) and
    checked for NaN; NumPy-backed data are sliced without copies of the whole array.

    Parameters
    ----------
    ds : xarray.Dataset
        The compendium.
    pairs : array_like of int, shape (n_tracks, 2)
        (celltype index, assay index) of the tracks.
    block_size : int, optional
        Positions per block. Default: the ``position`` chunks of a Dask-backed signal, else
        131,072.
    prefetch : bool
        Read the next block in a background thread. Default is True.
    """

    def __init__(self, ds: xr.Dataset, pairs, *, block_size=None, prefetch: bool = True):
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if len(self.pairs) == 0:
            raise InvalidSignalError("There are no observed tracks to train on.")
        signal = ds[SIGNAL].transpose(DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION).data
        self.n_positions = signal.shape[-1]
        if block_size is None:
            chunked = isinstance(signal, da.Array)
            block_size = signal.chunks[-1][0] if chunked else DEFAULT_POSITION_CHUNK
        if int(block_size) != block_size or block_size < 1:
            raise ConfigError(f"block_size must be a positive integer, got {block_size!r}.")
        self.block_size = int(min(block_size, self.n_positions))
        self.blocks = [
            (lo, min(lo + self.block_size, self.n_positions))
            for lo in range(0, self.n_positions, self.block_size)
        ]
        self.prefetch = prefetch
        self._signal = signal
        self._labels = (ds.get_index(DIM_CELLTYPE), ds.get_index(DIM_ASSAY), ds[CHROM], ds[START])

    def load(self, lo: int, hi: int, rows=None) -> np.ndarray:
        """float32 ``(len(rows), hi - lo)`` values of tracks ``rows`` (default: all).

        A Dask read runs on the configured scheduler (a distributed client, if one is the
        default), otherwise in the calling thread, so a prefetch does not start a thread pool
        competing with the training step for the cores.
        """
        rows = np.arange(len(self.pairs)) if rows is None else np.asarray(rows)
        pairs = self.pairs[rows]
        if isinstance(self._signal, da.Array):
            block = da.stack([self._signal[c, a, lo:hi] for c, a in pairs])
            scheduler = None if dask.config.get("scheduler", None) else "synchronous"
            block = block.compute(scheduler=scheduler)
        else:
            block = self._signal[pairs[:, 0], pairs[:, 1], lo:hi]
        block = np.asarray(block, dtype=np.float32)
        finite = np.isfinite(block)
        if not finite.all():
            self._raise_not_finite(finite, pairs, lo)
        return block

    def iter_blocks(self, order, rows_of=None):
        """Yield ``((lo, hi), rows, values)`` for blocks in ``order``, reading one ahead.

        ``rows_of(k)`` gives the tracks to read for block ``k`` (default: all).
        """
        order = list(order)
        rows = [None if rows_of is None else rows_of(k) for k in order]

        def read(i):
            return self.load(*self.blocks[order[i]], rows[i])

        if not self.prefetch:
            for i, k in enumerate(order):
                yield self.blocks[k], rows[i], read(i)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="avocado-prefetch") as pool:
            future = pool.submit(read, 0) if order else None
            for i, k in enumerate(order):
                values = future.result()
                if i + 1 < len(order):
                    future = pool.submit(read, i + 1)
                yield self.blocks[k], rows[i], values

    def _raise_not_finite(self, finite: np.ndarray, pairs: np.ndarray, lo: int):
        row = int(np.nonzero(~finite)[0][0])
        bad = np.flatnonzero(~finite[row])
        celltypes, assays, chrom, start = self._labels
        c, a = pairs[row]
        first, last = lo + int(bad[0]), lo + int(bad[-1])
        where = (
            f"{chrom.values[first]}:{int(start.values[first]):,}-"
            f"{chrom.values[last]}:{int(start.values[last]) + RESOLUTION:,}"
        )
        raise InvalidSignalError(
            f"Track ({celltypes[c]!r}, {assays[a]!r}) is observed but has {len(bad)} NaN "
            f"or infinite value(s) at positions {first}-{last} ({where}); training would "
            "diverge. Fill gaps explicitly (the paper's recipe is NaN -> 0 before arcsinh, "
            "ingest(missing='zero')), or mark the track unobserved with ds.avocado.mask()."
        )


def _batches(position, track, value, pairs_t, batch_size, average=None) -> Iterator[Batch]:
    """Cut an epoch's (or block's) shuffled samples into minibatches, each listed in genome
    order (the coarse-bin lookups of training rely on it); all in torch, on the device."""
    for lo in range(0, len(position), batch_size):
        pos, order = position[lo : lo + batch_size].sort()
        t = track[lo : lo + batch_size][order]
        pair = pairs_t[t]
        avg = None if average is None else average[lo : lo + batch_size][order]
        yield Batch(pair[:, 0], pair[:, 1], pos, value[lo : lo + batch_size][order], avg)


def _averages(sums, counts, assay, position, value) -> torch.Tensor:
    """The average of the other cell types of each sample (the kernel of
    :func:`avocado_xr.average.average_of_others`, gathered per sample)."""
    own = counts[assay]
    total = sums[assay, position] - value
    return torch.where(own > 1, total / (own - 1).clamp(min=1), torch.zeros_like(total))


class ResidentSampler:
    """The paper's epoch from tracks held on the training device (see the module notes).

    Parameters
    ----------
    reader : TrackReader
        Reads the tracks once, block by block, into a ``(n_tracks, n_positions)`` tensor.
    batch_size : int
        Samples per minibatch.
    device : torch.device
        Where the tracks live and minibatches are assembled.
    average : bool
        Also give each sample the average of its assay over the other observed tracks.

    Examples
    --------
    >>> import numpy as np, torch, avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> pairs = np.argwhere(ds.observed.values)
    >>> sampler = ResidentSampler(TrackReader(ds, pairs), 256, torch.device("cpu"))
    >>> batches = list(sampler.epoch(torch.Generator().manual_seed(0)))
    >>> sorted(torch.cat([b.position for b in batches]).tolist()) == list(range(1_000))
    True
    """

    def __init__(self, reader: TrackReader, batch_size: int, device, *, average: bool = False):
        self.reader, self.batch_size, self.device = reader, int(batch_size), torch.device(device)
        self.pairs = reader.pairs
        self.n_positions = reader.n_positions
        pin = self.device.type == "cuda"
        self.values = torch.empty((len(self.pairs), self.n_positions), device=self.device)
        for (lo, hi), _, block in reader.iter_blocks(range(len(reader.blocks))):
            block = torch.from_numpy(block)
            self.values[:, lo:hi].copy_(block.pin_memory() if pin else block, non_blocking=pin)
        self._pairs_t = torch.as_tensor(self.pairs, device=self.device)
        self.sums = self.counts = None
        if average:
            n_assays = int(self.pairs[:, 1].max()) + 1
            onehot = torch.zeros((n_assays, len(self.pairs)), device=self.device)
            onehot[self._pairs_t[:, 1], torch.arange(len(self.pairs), device=self.device)] = 1
            self.sums, self.counts = onehot @ self.values, onehot.sum(1)

    def __len__(self) -> int:
        """Minibatches per epoch."""
        return -(-self.n_positions // self.batch_size)

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        """Minibatches of one epoch: every position once, each with a uniform random track."""
        n, device = self.n_positions, self.device
        position = torch.randperm(n, generator=generator, device=generator.device).to(device)
        track = torch.randint(len(self.pairs), (n,), generator=generator, device=generator.device)
        track = track.to(device)
        value = self.values[track, position]
        average = None
        if self.sums is not None:
            assay = self._pairs_t[track, 1]
            average = _averages(self.sums, self.counts, assay, position, value)
        yield from _batches(position, track, value, self._pairs_t, self.batch_size, average)

    def assay_sums(self, lo: int, hi: int, n_assays: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-assay sums and track counts of the training tracks at positions ``[lo, hi)``."""
        return assay_totals(self.values[:, lo:hi].cpu().numpy(), self.pairs[:, 1], n_assays)


class BlockSampler:
    """The paper's epoch streamed block by block from a lazy compendium (module notes).

    Parameters
    ----------
    reader : TrackReader
        The training tracks, read block by block.
    batch_size : int
        Samples per minibatch.
    device : torch.device
        Where minibatches are assembled.
    tracks_per_block : int, optional
        Tracks read per block, drawn uniformly without replacement. Default: all observed
        tracks (averages need them all: ``average=True`` reads every track).
    average : bool
        Also give each sample the average of its assay over the other observed tracks.

    Examples
    --------
    >>> import numpy as np, torch, avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> reader = TrackReader(ds, np.argwhere(ds.observed.values), block_size=300)
    >>> sampler = BlockSampler(reader, 256, torch.device("cpu"), tracks_per_block=2)
    >>> batches = list(sampler.epoch(torch.Generator().manual_seed(0)))
    >>> sorted(torch.cat([b.position for b in batches]).tolist()) == list(range(1_000))
    True
    """

    def __init__(
        self,
        reader: TrackReader,
        batch_size: int,
        device,
        *,
        tracks_per_block: int | None = None,
        average: bool = False,
    ):
        self.reader, self.batch_size, self.device = reader, int(batch_size), torch.device(device)
        self.pairs = reader.pairs
        self.n_positions = reader.n_positions
        n_tracks = len(self.pairs)
        if tracks_per_block is not None and (
            int(tracks_per_block) != tracks_per_block or tracks_per_block < 1
        ):
            raise ConfigError(
                f"tracks_per_block must be a positive integer, got {tracks_per_block!r}."
            )
        self.tracks_per_block = n_tracks if tracks_per_block is None else int(tracks_per_block)
        if average:
            self.tracks_per_block = n_tracks  # the average needs every track of the block
        self.tracks_per_block = min(self.tracks_per_block, n_tracks)
        self.average = average
        self._pairs_t = torch.as_tensor(self.pairs, device=self.device)

    def __len__(self) -> int:
        """Minibatches per epoch."""
        return sum(-(-(hi - lo) // self.batch_size) for lo, hi in self.reader.blocks)

    def epoch(self, generator: torch.Generator) -> Iterator[Batch]:
        """Minibatches of one epoch: every position once, each with a uniform random track."""
        reader, device, gdev = self.reader, self.device, generator.device
        n_tracks, m = len(self.pairs), self.tracks_per_block
        order = torch.randperm(len(reader.blocks), generator=generator, device=gdev).tolist()
        subsets = {
            k: torch.randperm(n_tracks, generator=generator, device=gdev)[:m].sort().values.cpu()
            for k in order
        }  # drawn up front so the prefetch thread never touches the generator
        pin = device.type == "cuda"
        for (lo, hi), rows, values in reader.iter_blocks(order, lambda k: subsets[k].numpy()):
            values = torch.from_numpy(values)
            values = values.pin_memory().to(device, non_blocking=True) if pin else values
            n = hi - lo
            local = torch.randperm(n, generator=generator, device=gdev).to(device)
            pick = torch.randint(m, (n,), generator=generator, device=gdev).to(device)
            value = values[pick, local]
            track = torch.as_tensor(rows, device=device)[pick]
            average = None
            if self.average:
                sums, counts = assay_totals(values.cpu().numpy(), self.pairs[rows, 1])
                sums = torch.as_tensor(sums, dtype=torch.float32, device=device)
                counts = torch.as_tensor(counts, dtype=torch.float32, device=device)
                average = _averages(sums, counts, self._pairs_t[track, 1], local, value)
            yield from _batches(lo + local, track, value, self._pairs_t, self.batch_size, average)

    def assay_sums(self, lo: int, hi: int, n_assays: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-assay sums and track counts of the training tracks at positions ``[lo, hi)``."""
        return assay_totals(self.reader.load(lo, hi), self.pairs[:, 1], n_assays)


def make_sampler(
    ds: xr.Dataset,
    pairs,
    *,
    batch_size: int,
    device,
    sampler: str = "auto",
    block_size: int | None = None,
    tracks_per_block: int | None = None,
    average: bool = False,
    resident_bytes: int | None = None,
):
    """The sampler for ``fit``: ``"resident"``, ``"blocks"``, or ``"auto"`` (resident when the
    training tracks take at most ``resident_bytes`` as float32, default 4 GiB, else blocks)."""
    if sampler not in ("auto", "resident", "blocks"):
        raise ConfigError(f"sampler must be 'auto', 'resident' or 'blocks', got {sampler!r}.")
    reader = TrackReader(ds, pairs, block_size=block_size)
    if sampler == "auto":
        budget = RESIDENT_BYTES if resident_bytes is None else int(resident_bytes)
        sampler = "resident" if len(reader.pairs) * reader.n_positions * 4 <= budget else "blocks"
    if sampler == "resident":
        return ResidentSampler(reader, batch_size, device, average=average)
    return BlockSampler(
        reader, batch_size, device, tracks_per_block=tracks_per_block, average=average
    )
