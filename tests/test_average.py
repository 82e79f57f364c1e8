"""The average of the other cell types: one kernel, its semantics, and every caller agrees
(training-time validation vs imputation is checked in test_variants.py)."""

from __future__ import annotations

import dask.array
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from avocado_xr.average import average_block, window_mean
from avocado_xr.evaluation.baselines import average_baseline, impute_average
from avocado_xr.model.sampler import BlockSampler, ResidentSampler, TrackReader


def brute_force(signal: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Loop over every track and position: mean of the assay over the other observed
    cell types (all of them for an unobserved track), 0 when there is none."""
    n_c, n_a, n_p = signal.shape
    out = np.zeros(signal.shape)
    for c in range(n_c):
        for a in range(n_a):
            donors = [i for i in range(n_c) if observed[i, a] and i != c]
            for p in range(n_p):
                out[c, a, p] = np.mean([signal[i, a, p] for i in donors]) if donors else 0.0
    return out


@settings(max_examples=40, deadline=None)
@given(
    arrays(np.bool_, st.tuples(st.integers(1, 5), st.integers(1, 4))),
    st.integers(1, 6),
    st.integers(0, 2**32 - 1),
)
def test_kernel_semantics(observed, n_positions, seed):
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=(*observed.shape, n_positions)).astype(np.float32)
    signal[~observed] = np.nan  # unobserved tracks are NaN and must be ignored
    np.testing.assert_allclose(
        average_block(signal, observed), brute_force(signal, observed), rtol=1e-5, atol=1e-6
    )


def test_every_caller_computes_the_same_average(sample):
    """Sampler (training), baselines (eager and lazy) and the kernel agree on real tracks."""
    train = sample.avocado.mask([("E065", "H3K4me3"), ("E003", "H3K27me3")])
    signal, observed = train.signal.values, train.observed.values
    expected = average_block(signal, observed)
    # baselines, eager and on a zarr-like chunked input
    np.testing.assert_allclose(impute_average(train).imputed.values, expected, rtol=1e-6)
    chunked = train.copy()
    chunked["signal"] = train.signal.copy(data=dask.array.from_array(signal, (1, 2, 10_000)))
    np.testing.assert_allclose(impute_average(chunked).imputed.values, expected, rtol=1e-6)
    np.testing.assert_allclose(
        average_baseline(train, "E065", "H3K4me3").values, expected[2, 0], rtol=1e-6
    )
    # the training sampler's average input of each sample
    pairs = np.argwhere(observed)
    reader = TrackReader(train, pairs, block_size=20_000)
    cpu = torch.device("cpu")
    for sampler in (
        BlockSampler(reader, 5_000, cpu, average=True),
        ResidentSampler(reader, 5_000, cpu, average=True),
    ):
        for batch in list(sampler.epoch(torch.Generator().manual_seed(0)))[:3]:
            c, a, p = (t.numpy() for t in (batch.celltype, batch.assay, batch.position))
            np.testing.assert_allclose(
                batch.average.numpy(), expected[c, a, p], rtol=1e-5, atol=1e-6
            )


@settings(max_examples=60, deadline=None)
@given(
    runs=st.lists(st.integers(1, 12), min_size=1, max_size=4),
    half=st.integers(0, 6),
    seed=st.integers(0, 2**16),
)
def test_window_mean_brute_force(runs, half, seed):
    """Each position: the mean over the positions of its own run within ``half`` of it."""
    segment = np.repeat(np.arange(len(runs)), runs)
    values = np.random.default_rng(seed).normal(size=(2, len(segment)))
    expected = np.empty_like(values)
    for i in range(len(segment)):
        near = (np.abs(np.arange(len(segment)) - i) <= half) & (segment == segment[i])
        expected[:, i] = values[:, near].mean(-1)
    np.testing.assert_allclose(window_mean(values, segment, 2 * half + 1), expected, atol=1e-5)
