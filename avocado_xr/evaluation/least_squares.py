"""Non-negative least squares from normal equations, for the stacked ensemble's combiner and
the ``mixture`` baseline."""

from __future__ import annotations

import numpy as np

__all__ = ["nnls"]


def nnls(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Least squares with non-negative weights from the normal equations ``X'X`` and ``X'y``.

    Column 0 of ``X`` is the intercept: it is neither constrained nor penalised. The columns
    are standardised first, for conditioning.

    Parameters
    ----------
    gram : numpy.ndarray
        ``X'X``, (n, n).
    rhs : numpy.ndarray
        ``X'y``, (n,).

    Returns
    -------
    numpy.ndarray
        (n,): the intercept, then the weights (>= 0).

    Examples
    --------
    >>> x = np.column_stack([np.ones(5), [0.0, 1, 2, 3, 4], [1.0, 0, 2, 1, 3]])
    >>> nnls(x.T @ x, x.T @ (1.0 + 2.0 * x[:, 1] + 0.5 * x[:, 2])).round(3)
    array([1. , 2. , 0.5])
    >>> nnls(x.T @ x, x.T @ (1.0 + 2.0 * x[:, 1] - 0.5 * x[:, 2])).round(3)  # not < 0
    array([0.8 , 1.75, 0.  ])
    """
    from scipy.optimize import lsq_linear

    n = len(gram)
    scale = np.sqrt(np.maximum(np.diag(gram), 1e-12))
    g = gram / np.outer(scale, scale)
    r = rhs / scale
    # min |X w - y|^2 over w[1:] >= 0 equals min |L' w - L^-1 X'y|^2 with X'X = L L'
    chol = np.linalg.cholesky(g + 1e-10 * np.eye(n))
    lower = np.r_[-np.inf, np.zeros(n - 1)]
    fit = lsq_linear(chol.T, np.linalg.solve(chol, r), bounds=(lower, np.full(n, np.inf)))
    return fit.x / scale
