"""Shared fixtures: real data locations, a Dask compute counter, devices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _helpers import SHARED_DATA, raise_if_dask_computes  # noqa: F401

import avocado_xr as ax


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (the real data beside the repository)."""
    if SHARED_DATA is None:
        pytest.skip("shared/data is not available")
    return SHARED_DATA


@pytest.fixture(scope="session")
def pilot(shared_data):
    """The 25 real Roadmap pilot tracks (NumPy-backed, 112 MB)."""
    return ax.datasets.roadmap_pilot(shared_data / "roadmap_pilot")


@pytest.fixture(scope="session")
def sample():
    """The embedded three-region real sample."""
    return ax.datasets.roadmap_pilot_sample()


@pytest.fixture(
    params=[
        "cpu",
        pytest.param(
            "cuda",
            marks=[
                pytest.mark.gpu,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
            ],
        ),
    ]
)
def device(request):
    return request.param


@pytest.fixture(autouse=True)
def _seed_numpy():
    np.random.seed(0)
    yield
