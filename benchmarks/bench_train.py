"""Training throughput (samples/s) and peak memory on the real pilot data.

Cases, each in its own interpreter so that its peak RSS is its own:

- ``sampler``: the lazy block sampler alone, reading the pilot zarr store, against two simple
  baselines in the same run: drawing the same epoch from an in-memory NumPy array, and a naive
  lazy reader that fetches every minibatch's random positions from zarr (``vindex``).
- ``demo`` / ``paper``: ``ax.fit`` from the zarr store with the demo-size network
  (1 x 128; 32/24/10/20/30 factors; batch 10,000) and the paper-size network (2 x 2048;
  32/256/25/40/45; batch 10,000), in float32 and bfloat16, against a plain PyTorch port
  (``nn.Embedding`` + ``nn.Sequential`` with ``nn.Dropout`` and dense ``torch.optim.Adam``,
  data in memory) trained on the same positions.

Usage: ``python benchmarks/bench_train.py [sampler|demo|paper|all]``
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from _common import machine, peak_rss_mib, pilot_store, run_isolated

from avocado_xr.config import DEMO_NETWORK

DEMO = {**DEMO_NETWORK, "batch_size": 10_000}
PAPER = dict(batch_size=10_000)  # everything else: the paper's defaults
#: positions used for the paper-size case (a full pilot epoch takes minutes on 2 cores)
PAPER_POSITIONS = 131_072


def case_sampler() -> dict:
    import avocado_xr as ax
    from avocado_xr.model.sampler import BlockSampler

    lazy = ax.open_compendium(pilot_store())
    n = lazy.sizes["position"]
    sampler = BlockSampler(lazy, batch_size=10_000)
    rng = np.random.default_rng(0)
    for _ in sampler.epoch(rng):  # warm-up (file cache)
        pass
    tic = time.perf_counter()
    epochs = 3
    for _ in range(epochs):
        for _ in sampler.epoch(rng):
            pass
    lazy_rate = epochs * n / (time.perf_counter() - tic)

    signal = lazy.signal.values  # baseline 1: everything in memory
    pairs = np.argwhere(lazy.observed.values)
    tic = time.perf_counter()
    for _ in range(epochs):
        perm = rng.permutation(n)
        track = pairs[rng.integers(0, len(pairs), n)]
        for b in range(0, n, 10_000):
            p = perm[b : b + 10_000]
            _ = signal[track[b : b + 10_000, 0], track[b : b + 10_000, 1], p]
    memory_rate = epochs * n / (time.perf_counter() - tic)

    data = lazy.signal.data  # baseline 2: naive lazy reads, random positions per batch
    tic = time.perf_counter()
    n_batches = 3
    for _ in range(n_batches):
        p = np.sort(rng.integers(0, n, 10_000))
        t = pairs[rng.integers(0, len(pairs), 10_000)]
        data.vindex[t[:, 0], t[:, 1], p].compute()
    naive_rate = n_batches * 10_000 / (time.perf_counter() - tic)
    return {
        "case": "sampler",
        "block sampler from zarr (samples/s)": lazy_rate,
        "in-memory NumPy epoch (samples/s)": memory_rate,
        "naive per-batch zarr reads (samples/s)": naive_rate,
        "peak RSS (MiB)": peak_rss_mib(),
    }


def _plain_pytorch(ds, config: dict, n_batches: int) -> float:
    """The straightforward port: dense embeddings, nn.Dropout, dense Adam, in-memory data."""
    import torch
    from torch import nn

    import avocado_xr as ax
    from avocado_xr.genome import GenomeLayout

    cfg = ax.AvocadoConfig().replace(**config)
    layout = GenomeLayout.from_coords(ds.chrom.values, ds.start.values)
    i250 = torch.from_numpy(layout.scale_index(250)[0])
    i5k = torch.from_numpy(layout.scale_index(5000)[0])
    n = ds.sizes["position"]
    emb = nn.ModuleList(
        [
            nn.Embedding(5, cfg.n_celltype_factors),
            nn.Embedding(5, cfg.n_assay_factors),
            nn.Embedding(n, cfg.n_25bp_factors),
            nn.Embedding(int(i250.max()) + 1, cfg.n_250bp_factors),
            nn.Embedding(int(i5k.max()) + 1, cfg.n_5kbp_factors),
        ]
    )
    layers, width = [], cfg.n_celltype_factors + cfg.n_assay_factors + cfg.n_genome_factors
    for _ in range(cfg.n_layers):
        layers += [nn.Linear(width, cfg.n_nodes), nn.ReLU(), nn.Dropout(cfg.dropout)]
        width = cfg.n_nodes
    mlp = nn.Sequential(*layers, nn.Linear(width, 1))
    opt = torch.optim.Adam([*emb.parameters(), *mlp.parameters()], lr=cfg.lr)
    signal = ds.signal.values
    pairs = np.argwhere(ds.observed.values)
    rng = np.random.default_rng(0)
    tic = None
    for step in range(n_batches + 2):
        if step == 2:
            tic = time.perf_counter()
        p = rng.integers(0, n, cfg.batch_size)
        t = pairs[rng.integers(0, len(pairs), cfg.batch_size)]
        y = torch.from_numpy(signal[t[:, 0], t[:, 1], p])
        pt = torch.from_numpy(p)
        x = torch.cat(
            [
                emb[0](torch.from_numpy(t[:, 0])),
                emb[1](torch.from_numpy(t[:, 1])),
                emb[2](pt),
                emb[3](i250[pt]),
                emb[4](i5k[pt]),
            ],
            dim=1,
        )
        loss = nn.functional.mse_loss(mlp(x).squeeze(1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return n_batches * cfg.batch_size / (time.perf_counter() - tic)


def case_fit(size: str, precision: str) -> dict:
    import avocado_xr as ax

    lazy = ax.open_compendium(pilot_store())
    config = DEMO if size == "demo" else PAPER
    epochs = 3
    if size == "paper":
        lazy = lazy.isel(position=slice(0, PAPER_POSITIONS))
        epochs = 2
    model = ax.fit(lazy, epochs=epochs, device="cpu", precision=precision, **config)
    rates = [h["samples_per_second"] for h in model.history]
    result = {
        "case": f"{size} network, ax.fit from zarr, {precision}",
        "samples/s (best epoch)": max(rates),
        "samples/s (epochs)": [round(r) for r in rates],
        "peak RSS (MiB)": peak_rss_mib(),
    }
    if precision == "float32":
        n_batches = 40 if size == "demo" else 4
        in_memory = lazy.load()
        result["plain PyTorch port, same network (samples/s)"] = _plain_pytorch(
            in_memory, config, n_batches
        )
    return result


def main(which: str) -> None:
    if which == "case":
        name = sys.argv[2]
        if name == "sampler":
            out = case_sampler()
        else:
            size, precision = name.split(":")
            out = case_fit(size, precision)
        print(json.dumps(out))
        return
    print(f"# machine: {machine()}")
    pilot_store()
    cases = {
        "sampler": ["sampler"],
        "demo": ["demo:float32", "demo:bfloat16"],
        "paper": ["paper:float32", "paper:bfloat16"],
    }
    names = [c for k, v in cases.items() if which in (k, "all") for c in v]
    for name in names:
        result = json.loads(run_isolated(__file__, "case", name).strip().splitlines()[-1])
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "all")
