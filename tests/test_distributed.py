"""Scaling out: block reads, imputation and ingest run on an active dask.distributed client,
with threads and with worker processes (everything shipped to a task must pickle)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr
from _helpers import write_bw

import avocado_xr as ax

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def threads():
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0"
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


@pytest.fixture(scope="module")
def processes():
    environ = dict(os.environ)  # the nannies set OMP_NUM_THREADS=1 etc. here, for good
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()
    os.environ.clear()
    os.environ.update(environ)


@pytest.fixture(scope="module")
def sim_store(tmp_path_factory):
    ds = ax.testing.simulate_compendium(n_positions=3_000, seed=4)
    path = tmp_path_factory.mktemp("dist") / "sim.zarr"
    ax.save_compendium(ds, path, position_chunk=1_000)
    return ds, path


def test_training_reads_run_on_the_cluster(threads, sim_store):
    ds, path = sim_store
    lazy = ax.open_compendium(path)
    with distributed.get_task_stream(threads) as stream:
        model = ax.fit(lazy, epochs=1, n_layers=1, n_nodes=8, batch_size=500, device="cpu")
    assert len(stream.data) >= 3  # the three block reads ran as cluster tasks
    local = ax.fit(
        ds, epochs=1, n_layers=1, n_nodes=8, batch_size=500, block_size=1_000, device="cpu"
    )
    np.testing.assert_array_equal(model.predict("C1", "A1"), local.predict("C1", "A1"))


@pytest.mark.parametrize("cluster", ["threads", "processes"])
def test_imputation_writes_on_the_cluster(cluster, request, sim_store, tmp_path):
    client = request.getfixturevalue(cluster)
    ds, path = sim_store
    model = ax.fit(ds, epochs=1, n_layers=1, n_nodes=8, batch_size=500, device="cpu")
    with distributed.get_task_stream(client) as stream:
        model.impute(ax.open_compendium(path), merge=False).to_zarr(
            tmp_path / "imp.zarr", zarr_format=3, consolidated=False
        )
    workers = {t["worker"] for t in stream.data}
    assert len(stream.data) >= 3 and workers  # one task per block at least, on the workers
    on_disk = xr.open_zarr(tmp_path / "imp.zarr", consolidated=False).imputed
    np.testing.assert_allclose(
        on_disk.sel(celltype="C1", assay="A1"), model.predict("C1", "A1"), rtol=1e-5
    )


def test_ingest_on_worker_processes(processes, tmp_path):
    """Ingest tasks (the picklable job record and lazy bigWig reader) run in other processes."""
    pytest.importorskip("pyBigWig")
    chroms = {"chr1": 5_000, "chr2": 3_000}
    rng = np.random.default_rng(0)
    rows = []
    for name in ("A", "B"):
        records = [("chr1", s, s + 25, float(rng.random())) for s in range(0, 5_000, 25)]
        records += [("chr2", s, s + 50, float(rng.random())) for s in range(0, 3_000, 50)]
        rows.append(f"C\t{name}\t{write_bw(tmp_path / f'{name}.bw', chroms, records)}\n")
    (tmp_path / "m.tsv").write_text("celltype\tassay\tpath_or_url\n" + "".join(rows))
    with distributed.get_task_stream(processes) as stream:
        report = ax.ingest(
            tmp_path / "m.tsv", tmp_path / "c.zarr", genome=chroms, position_chunk=64
        )
    assert report.ok and len(report.written) == 2
    assert len({t["worker"] for t in stream.data}) >= 1 and len(stream.data) > 2
    local = ax.ingest(
        tmp_path / "m.tsv", tmp_path / "local.zarr", genome=chroms, position_chunk=64,
        scheduler="synchronous",
    )  # fmt: skip
    np.testing.assert_array_equal(report.open().signal.values, local.open().signal.values)
