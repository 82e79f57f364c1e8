"""Lazy (row-wise) Adam for the genome embedding tables.

Each minibatch touches a few thousand rows of tables with up to millions of rows. Dense Adam
would update every row on every step; ``torch.optim.SparseAdam`` needs sparse gradients that
are sorted and coalesced on every step. :class:`RowAdam` gathers the rows a batch needs as
small leaf tensors, lets autograd fill their gradients, and applies Adam to those rows only
(the semantics of ``SparseAdam``/TensorFlow's LazyAdam: moments of untouched rows do not
decay; bias correction uses the global step count).
"""

from __future__ import annotations

import torch

__all__ = ["RowAdam", "gather_genome"]


class RowAdam:
    """Adam applied to the rows of embedding tables that a minibatch gathered.

    Parameters
    ----------
    tables : list of torch.Tensor
        The embedding weights (updated in place, outside autograd).
    lr, betas, eps : float
        Adam hyperparameters.

    Examples
    --------
    >>> import torch
    >>> table = torch.zeros(5, 2)
    >>> opt = RowAdam([table], lr=0.1)
    >>> rows = opt.gather(0, torch.tensor([3, 1, 3]))
    >>> rows.sum().backward()
    >>> opt.step()
    >>> table[:, 0].tolist()  # rows 1 and 3 moved by -lr; the others are untouched
    [0.0, -0.10000000149011612, 0.0, -0.10000000149011612, 0.0]
    """

    def __init__(
        self,
        tables: list[torch.Tensor],
        *,
        lr: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ):
        self.tables = list(tables)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(t) for t in self.tables]
        self.exp_avg_sq = [torch.zeros_like(t) for t in self.tables]
        self.steps = 0
        self._pending: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    def gather(
        self, k: int, index: torch.Tensor, *, unique: bool = False, sorted: bool = False
    ) -> torch.Tensor:
        """Rows ``index`` of table ``k`` as a differentiable tensor for this step.

        ``unique=True`` promises that ``index`` has no repeats and ``sorted=True`` that it is
        non-decreasing; either skips a sort.
        """
        if unique:
            rows, inverse = index, None
        elif sorted:
            first = torch.ones_like(index, dtype=torch.bool)
            first[1:] = index[1:] != index[:-1]
            rows, inverse = index[first], torch.cumsum(first, 0) - 1
        else:
            rows, inverse = torch.unique(index, return_inverse=True)
        leaf = self.tables[k].detach().index_select(0, rows).requires_grad_(True)
        self._pending.append((k, rows, leaf))
        return leaf if inverse is None else leaf.index_select(0, inverse)

    def zero_grad(self) -> None:
        """Forget the rows gathered since the last step."""
        self._pending.clear()

    @torch.no_grad()
    def step(self) -> None:
        """Apply one Adam update to every row gathered since the last step."""
        if not self._pending:
            return
        self.steps += 1
        beta1, beta2 = self.betas
        correction1 = 1 - beta1**self.steps
        correction2 = 1 - beta2**self.steps
        for k, rows, leaf in self._pending:
            if leaf.grad is None:
                continue
            grad = leaf.grad.to(self.tables[k].dtype)
            m = self.exp_avg[k].index_select(0, rows).mul_(beta1).add_(grad, alpha=1 - beta1)
            v = self.exp_avg_sq[k].index_select(0, rows).mul_(beta2)
            v.addcmul_(grad, grad, value=1 - beta2)
            self.exp_avg[k].index_copy_(0, rows, m)
            self.exp_avg_sq[k].index_copy_(0, rows, v)
            update = (m / correction1).div_((v / correction2).sqrt_().add_(self.eps))
            # rows are unique, so the new values can be written rather than accumulated
            self.tables[k].index_copy_(0, rows, leaf.detach().sub_(update, alpha=self.lr))
        self._pending.clear()

    def state_dict(self) -> dict:
        return {
            "steps": self.steps,
            "exp_avg": [t.clone() for t in self.exp_avg],
            "exp_avg_sq": [t.clone() for t in self.exp_avg_sq],
        }

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        for dst, src in zip(
            self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"], strict=True
        ):
            dst.copy_(src)


def gather_genome(net, rows: RowAdam, position: torch.Tensor) -> torch.Tensor:
    """Genome features of a batch of an :class:`~avocado_xr.model.network.AvocadoNet`, as
    leaves that ``rows`` updates after backward.

    Within an epoch every position appears once, so the 25-bp rows are unique; the sampler
    lists a batch in genome order, so the coarse-bin indices are sorted.
    """
    return torch.cat(
        [
            rows.gather(0, position, unique=True),
            rows.gather(1, net.index_250bp[position], sorted=True),
            rows.gather(2, net.index_5kbp[position], sorted=True),
        ],
        dim=1,
    )
