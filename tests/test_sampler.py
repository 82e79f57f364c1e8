"""The paper's epoch, drawn lazily block by block."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from _helpers import CountingScheduler

import avocado_xr as ax
from avocado_xr.model.sampler import BlockSampler


@pytest.fixture(scope="module")
def sim():
    return ax.testing.simulate_compendium(n_celltypes=5, n_assays=4, n_positions=5_000, seed=1)


def _epoch(sampler, seed=0):
    batches = list(sampler.epoch(np.random.default_rng(seed)))
    return {
        k: np.concatenate([getattr(b, k) for b in batches])
        for k in ("celltype", "assay", "position", "value")
    }, batches


def test_epoch_visits_every_position_once_with_observed_tracks(sim):
    sampler = BlockSampler(sim, block_size=1_200, batch_size=500)
    out, batches = _epoch(sampler)
    assert np.array_equal(np.sort(out["position"]), np.arange(5_000))
    assert all(len(b) <= 500 for b in batches) and len(batches) == len(sampler)
    observed = sim.observed.values
    assert observed[out["celltype"], out["assay"]].all()
    signal = sim.signal.values
    np.testing.assert_array_equal(
        out["value"], signal[out["celltype"], out["assay"], out["position"]]
    )
    # every observed track is used, roughly uniformly
    counts = np.bincount(out["celltype"] * 4 + out["assay"], minlength=20)[observed.ravel()]
    assert counts.min() > 0.6 * counts.mean()


def test_minibatches_are_shuffled_within_blocks(sim):
    sampler = BlockSampler(sim, block_size=1_000, batch_size=250)
    _, batches = _epoch(sampler)
    first = batches[0].position
    assert first.max() - first.min() < 1_000  # one block at a time
    assert first.max() - first.min() > 2 * len(first)  # a random subset of the block
    # listed in genome order, which training relies on for its coarse-bin lookups
    assert all(np.all(np.diff(b.position) > 0) for b in batches)
    other, _ = _epoch(sampler, seed=1)
    mine, _ = _epoch(sampler, seed=0)
    assert not np.array_equal(mine["position"], other["position"])
    again, _ = _epoch(sampler, seed=0)
    np.testing.assert_array_equal(mine["value"], again["value"])


def test_reads_one_block_per_compute_from_zarr(sim, tmp_path):
    ax.save_compendium(sim, tmp_path / "sim.zarr", position_chunk=1_000)
    lazy = ax.open_compendium(tmp_path / "sim.zarr")
    sampler = BlockSampler(lazy, batch_size=300)
    assert sampler.block_size == 1_000  # aligned with the zarr chunks
    scheduler = CountingScheduler(max_computes=10**6)
    with dask.config.set(scheduler=scheduler):
        lazy_out, _ = _epoch(sampler)
    assert scheduler.total_computes == len(sampler.blocks) == 5
    eager_out, _ = _epoch(BlockSampler(sim, block_size=1_000, batch_size=300))
    for key in eager_out:
        np.testing.assert_array_equal(lazy_out[key], eager_out[key])


def test_block_memory_is_bounded_by_block_size(tmp_path):
    """Peak memory of an epoch from zarr follows the block, not the store (tracemalloc sees
    NumPy's allocations)."""
    import tracemalloc

    big = ax.testing.simulate_compendium(
        n_celltypes=4, n_assays=5, n_positions=200_000, missing_frac=0.0, seed=3
    )
    ax.save_compendium(big, tmp_path / "big.zarr", position_chunk=4_000)
    store_bytes = big.signal.nbytes  # 16 MB of float32
    del big
    sampler = BlockSampler(ax.open_compendium(tmp_path / "big.zarr"), batch_size=1_000)
    block_bytes = 20 * sampler.block_size * 4  # 20 tracks x one block of float32
    tracemalloc.start()
    n = sum(len(b) for b in sampler.epoch(np.random.default_rng(0)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n == 200_000
    assert peak < 12 * block_bytes < store_bytes / 4, (peak, block_bytes, store_bytes)


def test_no_tracks_is_an_error(sim):
    with pytest.raises(ax.AvocadoXrError, match="no observed tracks"):
        BlockSampler(sim, pairs=[])
