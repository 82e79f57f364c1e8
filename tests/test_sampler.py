"""The paper's epoch: resident and block samplers, on the device, in distribution."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import torch
from _helpers import CountingScheduler

import avocado_xr as ax
from avocado_xr.model.sampler import BlockSampler, ResidentSampler, TrackReader, make_sampler

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def sim():
    return ax.testing.simulate_compendium(n_celltypes=5, n_assays=4, n_positions=5_000, seed=1)


def _pairs(ds):
    return np.argwhere(ds.observed.values)


def _epoch(sampler, seed=0):
    batches = list(sampler.epoch(torch.Generator().manual_seed(seed)))
    out = {
        k: torch.cat([getattr(b, k) for b in batches]).numpy()
        for k in ("celltype", "assay", "position", "value")
    }
    return out, batches


@pytest.mark.parametrize("kind", ["resident", "blocks", "blocks-subset"])
def test_epoch_visits_every_position_once_with_observed_tracks(sim, kind):
    reader = TrackReader(sim, _pairs(sim), block_size=1_200)
    if kind == "resident":
        sampler = ResidentSampler(reader, 500, CPU)
    else:
        per_block = 3 if kind == "blocks-subset" else None
        sampler = BlockSampler(reader, 500, CPU, tracks_per_block=per_block)
    out, batches = _epoch(sampler)
    assert np.array_equal(np.sort(out["position"]), np.arange(5_000))
    assert all(len(b) <= 500 for b in batches) and len(batches) == len(sampler)
    observed = sim.observed.values
    assert observed[out["celltype"], out["assay"]].all()
    signal = sim.signal.values
    np.testing.assert_array_equal(
        out["value"], signal[out["celltype"], out["assay"], out["position"]]
    )
    # each minibatch is listed in genome order (training's coarse-bin lookups rely on it)
    assert all(bool((b.position[1:] > b.position[:-1]).all()) for b in batches)


@pytest.mark.parametrize("kind", ["resident", "blocks-subset"])
def test_each_position_track_pair_has_the_right_marginal(kind):
    """Over many epochs every (position, track) pairing occurs with probability 1/n_tracks,
    also when a block reads only a subset of the tracks: per epoch each pairing happens with
    probability exactly 1/n_tracks, so its count over E epochs is Binomial(E, 1/n_tracks)."""
    ds = ax.testing.simulate_compendium(n_celltypes=3, n_assays=3, n_positions=600, seed=2)
    pairs = _pairs(ds)
    reader = TrackReader(ds, pairs, block_size=100)
    if kind == "resident":
        sampler = ResidentSampler(reader, 128, CPU)
    else:
        sampler = BlockSampler(reader, 128, CPU, tracks_per_block=2)
    n_tracks, epochs = len(pairs), 300
    counts = np.zeros((600, n_tracks))
    track_of = np.full(ds.observed.shape, -1)
    track_of[pairs[:, 0], pairs[:, 1]] = np.arange(n_tracks)
    for e in range(epochs):
        out, _ = _epoch(sampler, seed=e)
        np.add.at(counts, (out["position"], track_of[out["celltype"], out["assay"]]), 1)
    assert (counts.sum(1) == epochs).all()  # every position exactly once per epoch
    p = 1 / n_tracks
    z = (counts - epochs * p) / np.sqrt(epochs * p * (1 - p))
    assert np.abs(z).max() < 5.5  # Bonferroni over the cells: no pairing is favoured
    assert abs(z.mean()) < 0.1  # and none is missing on average
    # a biased subset (e.g. always the first tracks) would put ~0 counts on the others
    assert counts.min() > 0.3 * epochs * p


def test_a_subset_block_reads_only_its_tracks(sim, tmp_path):
    """The cost of a block is tracks_per_block chunk reads, whatever the number of tracks."""
    ax.save_compendium(sim, tmp_path / "sim.zarr", position_chunk=1_000)
    lazy = ax.open_compendium(tmp_path / "sim.zarr")
    reader = TrackReader(lazy, _pairs(lazy))
    loads = []
    original = reader.load
    reader.load = lambda lo, hi, rows=None: loads.append(len(rows)) or original(lo, hi, rows)
    sampler = BlockSampler(reader, 300, CPU, tracks_per_block=2)
    list(sampler.epoch(torch.Generator().manual_seed(0)))
    assert loads == [2] * 5


def test_blocks_read_one_compute_each_from_zarr(sim, tmp_path):
    ax.save_compendium(sim, tmp_path / "sim.zarr", position_chunk=1_000)
    lazy = ax.open_compendium(tmp_path / "sim.zarr")
    reader = TrackReader(lazy, _pairs(lazy))
    assert reader.block_size == 1_000  # aligned with the zarr chunks
    scheduler = CountingScheduler(max_computes=10**6)
    with dask.config.set(scheduler=scheduler):
        lazy_out, _ = _epoch(BlockSampler(reader, 300, CPU))
    assert scheduler.total_computes == len(reader.blocks) == 5
    eager = BlockSampler(TrackReader(sim, _pairs(sim), block_size=1_000), 300, CPU)
    for key, value in _epoch(eager)[0].items():
        np.testing.assert_array_equal(lazy_out[key], value)


def test_auto_chooses_by_the_memory_budget(sim):
    pairs = _pairs(sim)
    small = make_sampler(sim, pairs, batch_size=100, device=CPU)
    assert isinstance(small, ResidentSampler)
    tight = make_sampler(sim, pairs, batch_size=100, device=CPU, resident_bytes=1_000)
    assert isinstance(tight, BlockSampler)


_MEMORY_SCRIPT = """
import sys, tracemalloc
import numpy as np, torch
import avocado_xr as ax
from avocado_xr.model.sampler import BlockSampler, TrackReader

lazy = ax.open_compendium(sys.argv[1])
pairs, cpu = np.argwhere(lazy.observed.values), torch.device("cpu")
warm = TrackReader(lazy.isel(position=slice(0, 8_000)), pairs)
list(BlockSampler(warm, 1_000, cpu).epoch(torch.Generator().manual_seed(1)))  # first imports
sampler = BlockSampler(TrackReader(lazy, pairs), 1_000, cpu)
tracemalloc.start()
n = sum(len(b) for b in sampler.epoch(torch.Generator().manual_seed(0)))
_, peak = tracemalloc.get_traced_memory()
print(n, peak, sampler.reader.block_size)
"""


def test_block_memory_is_bounded_by_block_size(tmp_path):
    """Peak memory of an epoch from zarr follows the block, not the store (tracemalloc sees
    NumPy's allocations). Measured in a fresh interpreter: tracemalloc counts every thread of
    a process, and threads other tests leave behind would be counted too."""
    import subprocess
    import sys

    big = ax.testing.simulate_compendium(
        n_celltypes=4, n_assays=5, n_positions=200_000, missing_frac=0.0, seed=3
    )
    ax.save_compendium(big, tmp_path / "big.zarr", position_chunk=4_000)
    store_bytes = big.signal.nbytes  # 16 MB of float32
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT, str(tmp_path / "big.zarr")],
        capture_output=True,
        text=True,
        check=True,
    )
    n, peak, block_size = (int(v) for v in out.stdout.split())
    block_bytes = 20 * block_size * 4  # 20 tracks x one block of float32
    assert n == 200_000
    assert peak < 12 * block_bytes < store_bytes / 4, (peak, block_bytes, store_bytes)


def test_errors(sim):
    with pytest.raises(ax.AvocadoXrError, match="no observed tracks"):
        TrackReader(sim, np.zeros((0, 2), int))
    with pytest.raises(ax.AvocadoXrError, match="tracks_per_block"):
        BlockSampler(TrackReader(sim, _pairs(sim)), 100, CPU, tracks_per_block=0)
    with pytest.raises(ax.AvocadoXrError, match="sampler must be"):
        make_sampler(sim, _pairs(sim), batch_size=10, device=CPU, sampler="random")
