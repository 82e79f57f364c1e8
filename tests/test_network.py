"""The network: the paper's architecture and initialisation, and its training pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avocado_xr.config import AvocadoConfig
from avocado_xr.exceptions import ConfigError
from avocado_xr.model.network import AvocadoNet, dropout_keep_mask, relu_dropout
from avocado_xr.model.optim import RowAdam


def make_net(config=None, n_positions=1_000):
    index = np.arange(n_positions)
    return AvocadoNet(5, 4, index // 10, index // 200, config or AvocadoConfig())


def test_paper_defaults():
    cfg = AvocadoConfig()
    assert (cfg.n_celltype_factors, cfg.n_assay_factors) == (32, 256)
    assert (cfg.n_25bp_factors, cfg.n_250bp_factors, cfg.n_5kbp_factors) == (25, 40, 45)
    assert (cfg.n_layers, cfg.n_nodes, cfg.lr, cfg.embedding_init) == (2, 2048, 0.01, 0.5)
    assert cfg.dropout > 0
    net = make_net(cfg)
    shapes = {n: tuple(p.shape) for n, p in net.named_parameters()}
    assert shapes["head.celltype.weight"] == (5, 32)
    assert shapes["head.assay.weight"] == (4, 256)
    assert shapes["genome_25bp.weight"] == (1_000, 25)
    assert shapes["genome_250bp.weight"] == (100, 40)
    assert shapes["genome_5kbp.weight"] == (5, 45)
    assert shapes["head.hidden.0.weight"] == (2048, 32 + 256 + 110)
    assert shapes["head.hidden.1.weight"] == (2048, 2048)
    assert shapes["head.output.weight"] == (1, 2048)


def test_initialisation_is_uniform_and_glorot():
    torch.manual_seed(0)
    net = make_net(AvocadoConfig(n_nodes=256))
    for table in net.embeddings():
        w = table.weight.detach()
        assert w.min() >= -0.5 and w.max() <= 0.5 and w.std() > 0.25  # U(-0.5, 0.5): std 0.289
    first = net.head.hidden[0].weight.detach()
    limit = np.sqrt(6 / (first.shape[0] + first.shape[1]))
    assert first.abs().max() <= limit and first.abs().max() > 0.95 * limit
    assert torch.all(net.head.hidden[0].bias == 0)


def test_split_first_layer_equals_concatenation():
    torch.manual_seed(1)
    net = make_net(AvocadoConfig(n_layers=2, n_nodes=64)).eval()
    c = torch.tensor([0, 4, 2, 2])
    a = torch.tensor([3, 0, 1, 1])
    p = torch.tensor([0, 999, 500, 501])
    x = torch.cat([net.celltype(c), net.assay(a), net.genome_features(p)], dim=1)
    for layer in net.head.hidden:
        x = torch.relu(layer(x))
    expected = net.head.output(x).squeeze(1)
    torch.testing.assert_close(net(c, a, p), expected)


def test_linear_network_without_hidden_layers():
    net = make_net(AvocadoConfig(n_layers=0)).eval()
    out = net(torch.tensor([1]), torch.tensor([1]), torch.tensor([7]))
    assert out.shape == (1,)


@pytest.mark.parametrize("p", [0.5, 0.25, 0.1])
def test_relu_dropout_rate_scale_and_gradient(p):
    x = torch.randn(200_000, generator=torch.Generator().manual_seed(1), requires_grad=True)
    torch.manual_seed(0)
    y, scale = relu_dropout(x, p)
    assert scale == 256 / (256 - round(p * 256))
    positive = x.detach() > 0
    kept = (y.detach()[positive] != 0).float().mean().item()
    assert abs(kept - 1 / scale) < 0.005
    torch.testing.assert_close(y.detach()[y.detach() != 0], x.detach()[y.detach() != 0])
    assert torch.all(y.detach()[~positive] == 0)
    # same expectation as relu: E[scale * relu(x) * keep] = relu(x)
    assert abs((y.detach() * scale).mean().item() - torch.relu(x.detach()).mean().item()) < 0.01
    y.sum().backward()
    torch.testing.assert_close(x.grad, (y.detach() != 0).float())
    torch.manual_seed(0)
    again, _ = relu_dropout(x.detach(), p)
    assert torch.equal(again, y.detach())  # seeded


def test_training_forward_is_inverted_dropout():
    """With the mask fixed, the training forward equals relu -> mask -> scale -> linear."""
    net = make_net(AvocadoConfig(n_layers=2, n_nodes=32, dropout=0.5))
    c, a, p = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([5, 6])
    torch.manual_seed(3)
    out = net.train()(c, a, p)
    torch.manual_seed(3)
    x = torch.cat([net.celltype(c), net.assay(a), net.genome_features(p)], dim=1)
    x = net.head.hidden[0](x)
    for layer in [net.head.hidden[1], net.head.output]:
        keep, scale = dropout_keep_mask(x.shape, 0.5)
        x = layer(torch.relu(x) * keep * scale)
    torch.testing.assert_close(out, x.squeeze(1))


def test_row_adam_matches_sparse_adam():
    """RowAdam is the SparseAdam (lazy Adam) update, without sparse gradients."""
    torch.manual_seed(0)
    init = torch.randn(50, 3)
    ours = init.clone()
    reference = torch.nn.Embedding.from_pretrained(init.clone(), freeze=False, sparse=True)
    opt_ref = torch.optim.SparseAdam(reference.parameters(), lr=0.05)
    opt = RowAdam([ours], lr=0.05)
    rng = np.random.default_rng(0)
    for _ in range(20):
        idx = torch.from_numpy(rng.integers(0, 50, size=30))
        target = torch.randn(30, 3)
        opt_ref.zero_grad()
        ((reference(idx) - target) ** 2).sum().backward()
        opt_ref.step()
        opt.zero_grad()
        ((opt.gather(0, idx) - target) ** 2).sum().backward()
        opt.step()
    torch.testing.assert_close(ours, reference.weight.detach(), rtol=1e-5, atol=1e-6)


def test_config_validates():
    with pytest.raises(ValueError, match="dropout"):
        AvocadoConfig(dropout=1.0)
    with pytest.raises(ValueError, match="n_nodes"):
        AvocadoConfig(n_nodes=0)
    with pytest.raises(ConfigError, match="n_nodez"):
        AvocadoConfig().replace(n_nodez=3)
