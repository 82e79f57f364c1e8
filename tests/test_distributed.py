"""Scaling out: block reads and imputation run on an active dask.distributed client."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import avocado_xr as ax

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def test_training_reads_and_imputation_run_on_the_cluster(client, tmp_path):
    ds = ax.testing.simulate_compendium(n_positions=3_000, seed=4)
    ax.save_compendium(ds, tmp_path / "sim.zarr", position_chunk=1_000)
    lazy = ax.open_compendium(tmp_path / "sim.zarr")
    with distributed.get_task_stream(client) as stream:
        model = ax.fit(lazy, epochs=1, n_layers=1, n_nodes=8, batch_size=500, device="cpu")
    assert any("stack-getitem" in str(t["key"]) for t in stream.data)  # block reads
    local = ax.fit(
        ds, epochs=1, n_layers=1, n_nodes=8, batch_size=500, block_size=1_000, device="cpu"
    )
    np.testing.assert_array_equal(model.predict("C1", "A1"), local.predict("C1", "A1"))
    with distributed.get_task_stream(client) as stream:
        model.impute(lazy, merge=False).to_zarr(
            tmp_path / "imp.zarr", zarr_format=3, consolidated=False
        )
    assert len(stream.data) >= 3  # one write task per block, at least
    on_disk = xr.open_zarr(tmp_path / "imp.zarr", consolidated=False).imputed
    np.testing.assert_allclose(
        on_disk.sel(celltype="C1", assay="A1"), model.predict("C1", "A1"), rtol=1e-5
    )
