"""Lazy training minibatches: the paper's epoch, drawn block by block from a (zarr) compendium.

One epoch visits every position once, each time paired with one observed experiment chosen
at random (Schreiber et al. 2020, Methods). Positions are cut into blocks aligned with the
``position`` chunks; blocks are visited in random order, each block is read through Dask for
the observed tracks only (one chunk read per track), the next block is read in a background
thread while the current one trains, and minibatches are shuffled within the block. Memory
is bounded by ``2 x n_observed x block_size`` float32 values, whatever the compendium size.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..average import assay_totals, average_of_others
from ..exceptions import ConfigError, InvalidSignalError
from ..variables import (
    DEFAULT_POSITION_CHUNK,
    DIM_ASSAY,
    DIM_CELLTYPE,
    DIM_POSITION,
    OBSERVED,
    SIGNAL,
)

__all__ = ["Batch", "BlockSampler"]


@dataclass
class Batch:
    """One minibatch: integer indices into the model's axes and the target values."""

    celltype: np.ndarray
    assay: np.ndarray
    position: np.ndarray
    value: np.ndarray
    #: mean of the same assay over the other sampled cell types (with ``average=True``)
    average: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.value)


class BlockSampler:
    """Draw the paper's epochs from a compendium, one position block at a time.

    Parameters
    ----------
    ds : xarray.Dataset
        The compendium (NumPy- or Dask-backed; only ``signal`` of observed tracks is read).
    pairs : list of (int, int), optional
        (celltype index, assay index) of the tracks to sample. Default: all observed tracks.
    block_size : int, optional
        Positions per block. Default: the ``position`` chunk size of a Dask-backed
        ``signal``, else 131,072.
    batch_size : int
        Samples per minibatch. Default is 10,000.
    prefetch : bool
        Read the next block in a background thread. Default is True.
    average : bool
        Also give each sample the mean of its assay over the *other* sampled tracks (the
        average-of-other-cell-types input). Default is False.

    Examples
    --------
    >>> import numpy as np, avocado_xr as ax
    >>> ds = ax.testing.simulate_compendium(n_positions=1_000, seed=0)
    >>> sampler = BlockSampler(ds, block_size=300, batch_size=256)
    >>> batches = list(sampler.epoch(np.random.default_rng(0)))
    >>> sorted(np.concatenate([b.position for b in batches])) == list(range(1_000))
    True
    """

    def __init__(
        self,
        ds: xr.Dataset,
        *,
        pairs: list[tuple[int, int]] | None = None,
        block_size: int | None = None,
        batch_size: int = 10_000,
        prefetch: bool = True,
        average: bool = False,
    ):
        if pairs is None:
            pairs = [tuple(p) for p in np.argwhere(np.asarray(ds[OBSERVED].values))]
        if not pairs:
            raise InvalidSignalError("There are no observed tracks to train on.")
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        signal = ds[SIGNAL].transpose(DIM_CELLTYPE, DIM_ASSAY, DIM_POSITION).data
        self.n_positions = signal.shape[-1]
        if block_size is None:
            block_size = (
                signal.chunks[-1][0] if isinstance(signal, da.Array) else DEFAULT_POSITION_CHUNK
            )
        self.block_size = int(min(block_size, self.n_positions))
        if self.block_size < 1 or batch_size < 1:
            raise ConfigError(
                f"block_size and batch_size must be positive, got {block_size} and {batch_size}."
            )
        self.batch_size = int(batch_size)
        self.prefetch = prefetch
        self.average = average
        self._tracks = _stack_tracks(signal, self.pairs)
        self.blocks = [
            (lo, min(lo + self.block_size, self.n_positions))
            for lo in range(0, self.n_positions, self.block_size)
        ]

    def __len__(self) -> int:
        """Minibatches per epoch."""
        return sum(-(-(hi - lo) // self.batch_size) for lo, hi in self.blocks)

    def load_block(self, lo: int, hi: int) -> np.ndarray:
        """float32 values of the sampled tracks at positions ``lo:hi`` (one Dask compute).

        The read runs on the configured Dask scheduler (a distributed client, if one is the
        default); otherwise in the calling thread, so that a prefetch does not start a pool of
        threads competing with the training step's own threads for the cores.
        """
        block = self._tracks[:, lo:hi]
        if isinstance(block, da.Array):
            scheduler = None if dask.config.get("scheduler", None) else "synchronous"
            block = block.compute(scheduler=scheduler)
        return np.asarray(block, dtype=np.float32)

    def iter_blocks(self, order):
        """Yield ``((lo, hi), values)`` for blocks in ``order``, reading one block ahead."""
        order = list(order)
        if not self.prefetch:
            for k in order:
                yield self.blocks[k], self.load_block(*self.blocks[k])
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="avocado-prefetch") as pool:
            future = pool.submit(self.load_block, *self.blocks[order[0]]) if order else None
            for i, k in enumerate(order):
                values = future.result()
                if i + 1 < len(order):
                    future = pool.submit(self.load_block, *self.blocks[order[i + 1]])
                yield self.blocks[k], values

    def epoch(self, rng: np.random.Generator) -> Iterator[Batch]:
        """Yield the minibatches of one epoch: every position once, with a random track each."""
        order = rng.permutation(len(self.blocks))
        for (lo, hi), values in self.iter_blocks(order):
            n = hi - lo
            track = rng.integers(0, len(self.pairs), size=n)
            local = rng.permutation(n)
            track = track[local]
            value = values[track, local]
            average = None
            if self.average:
                sums, counts = assay_totals(values, self.pairs[:, 1])
                average = average_of_others(
                    sums[self.pairs[track, 1], local], counts[self.pairs[track, 1]], value
                )
            for b in range(0, n, self.batch_size):
                # a minibatch is a random set of positions; listing it in genome order makes
                # the coarse-bin lookups sorted and the embedding reads sequential
                sl = b + np.argsort(local[b : b + self.batch_size], kind="stable")
                pair = self.pairs[track[sl]]
                yield Batch(
                    pair[:, 0],
                    pair[:, 1],
                    lo + local[sl],
                    value[sl],
                    None if average is None else average[sl],
                )


def _stack_tracks(signal, pairs: np.ndarray):
    """(n_tracks, n_positions) view of the sampled tracks, lazy for Dask input."""
    if isinstance(signal, da.Array):
        return da.stack([signal[c, a] for c, a in pairs])
    return _TrackView(signal, pairs)


class _TrackView:
    """Row selection of a NumPy (celltype, assay, position) array without copying it."""

    def __init__(self, signal: np.ndarray, pairs: np.ndarray):
        self.signal, self.pairs = signal, pairs

    def __getitem__(self, key):
        rows, cols = key
        pairs = self.pairs[rows]
        return self.signal[pairs[:, 0], pairs[:, 1], cols]
