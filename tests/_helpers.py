"""Test helpers importable from every test module (``tests`` is on ``pythonpath``)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import dask
import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data() -> Path | None:
    candidates = [os.environ.get("AVOCADO_XR_SHARED_DATA"), REPO.parent / "shared" / "data"]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


SHARED_DATA = _shared_data()
requires_shared = pytest.mark.skipif(
    SHARED_DATA is None, reason="the project's shared/data folder is not beside the repository"
)


class CountingScheduler:
    """A Dask scheduler that counts computes and fails past ``max_computes``."""

    def __init__(self, max_computes: int = 0):
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"Too many Dask computations: {self.total_computes} > {self.max_computes}"
            )
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0):
    """Fail if the block computes Dask-backed data more than ``max_computes`` times."""
    scheduler = CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler


def write_bw(path, chroms, records):
    """Write a small bigWig: ``records`` is a sorted list of (chrom, start, end, value)."""
    import pyBigWig

    bw = pyBigWig.open(str(path), "w")
    bw.addHeader(list(chroms.items()))
    if records:
        bw.addEntries(
            [r[0] for r in records],
            [int(r[1]) for r in records],
            ends=[int(r[2]) for r in records],
            values=[float(r[3]) for r in records],
        )
    bw.close()
    return path
