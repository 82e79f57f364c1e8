"""Model hyperparameters: a frozen dataclass whose defaults are the paper's."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import numbers
from dataclasses import dataclass

from .exceptions import ConfigError

__all__ = [
    "ARCHITECTURES",
    "AVERAGE_MODES",
    "COARSE_RULES",
    "DEMO_NETWORK",
    "AvocadoConfig",
    "check_epochs",
]

#: network architectures: the paper's deep network, or a PREDICTD-style linear model
ARCHITECTURES = ("deep", "linear")
#: how a model uses the average of the same assay over the other cell types
AVERAGE_MODES = ("none", "input", "residual")
#: how 25-bp positions map to 250-bp and 5-kbp bins: "segment" (ours: genome-aligned windows
#: within a run of contiguous bins, never straddling a gap) or "flat" (the original Avocado's
#: ``i // 10`` and ``i // 200`` over the position index, kept by imported models)
COARSE_RULES = ("segment", "flat")

#: the demo-size network of the benchmarks and the demo: 1 x 128; 32/24/10/20/30 factors
DEMO_NETWORK = {
    "n_layers": 1,
    "n_nodes": 128,
    "n_celltype_factors": 32,
    "n_assay_factors": 24,
    "n_25bp_factors": 10,
    "n_250bp_factors": 20,
    "n_5kbp_factors": 30,
    "dropout": 0.5,
}


@dataclass(frozen=True)
class AvocadoConfig:
    """Hyperparameters of an Avocado model.

    Defaults follow Schreiber et al. (Genome Biology 2020), Methods: 32 cell type, 256 assay,
    25/40/45 genome factors at 25 bp/250 bp/5 kbp, two hidden layers of 2,048 ReLU units,
    embeddings drawn from U(-0.5, 0.5), Glorot-uniform dense layers, Adam with learning rate
    0.01 on the mean squared error.

    Parameters
    ----------
    n_celltype_factors : int
        Cell type embedding size. Default is 32.
    n_assay_factors : int
        Assay embedding size. Default is 256.
    n_25bp_factors, n_250bp_factors, n_5kbp_factors : int
        Genome embedding sizes at the three scales. Defaults are 25, 40 and 45.
    n_layers : int
        Hidden layers. Default is 2.
    n_nodes : int
        Units per hidden layer. Default is 2048.
    dropout : float
        Dropout rate after each hidden layer. Default is 0.5.
    lr : float
        Adam learning rate. Default is 0.01.
    batch_size : int
        Training minibatch size. Default is 40,000 (the original implementation's).
    embedding_init : float
        Embeddings start uniform in [-embedding_init, embedding_init]. Default is 0.5.
    genome_l2 : float
        L2 penalty on the genome factors of each minibatch (0 is the paper's model).
        Default is 0.
    factor_l2 : float
        L2 penalty on the cell type and assay factors of each minibatch while they train
        (joint training; not phase 2 or transfer, which freeze or add factors), as PREDICTD
        regularizes its cell type and assay factor matrices (Durham et al., *Nat. Commun.* 9,
        1402, 2018) and as in regularized matrix factorization generally (Koren, Bell &
        Volinsky, *Computer* 42, 2009): it shrinks the factors that must extrapolate to
        (cell type, assay) pairs never observed together. 0 is the paper's model. Default is 0.
    architecture : {"deep", "linear"}
        ``"deep"``: the paper's network. ``"linear"``: a PREDICTD-style generalized dot
        product of cell type, assay and genome factors (cell type and assay factors then have
        ``n_genome_factors`` entries). Default is "deep".
    coarse_rule : {"segment", "flat"}
        How positions map to the coarse bins: ``"segment"`` (default) uses genome-aligned
        windows within a run of contiguous bins, so a coarse bin never straddles a gap;
        ``"flat"`` is the original Avocado's ``i // 10`` and ``i // 200`` over the position
        index (models imported from the original keep it; for whole chromosomes starting at 0
        the two are the same). Default is "segment".
    average : {"none", "input", "residual"}
        Give the network the average of the same assay over the other observed cell types at
        each position: as an extra input (``"input"``), or as an extra input that is also
        added to the output, so the network learns a correction to it (``"residual"``).
        Default is "none" (the paper's model).

    Examples
    --------
    >>> cfg = AvocadoConfig(n_layers=1, n_nodes=128)
    >>> cfg.n_genome_factors
    110
    >>> AvocadoConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    n_celltype_factors: int = 32
    n_assay_factors: int = 256
    n_25bp_factors: int = 25
    n_250bp_factors: int = 40
    n_5kbp_factors: int = 45
    n_layers: int = 2
    n_nodes: int = 2048
    dropout: float = 0.5
    lr: float = 0.01
    batch_size: int = 40_000
    embedding_init: float = 0.5
    genome_l2: float = 0.0
    factor_l2: float = 0.0
    architecture: str = "deep"
    average: str = "none"
    coarse_rule: str = "segment"

    def __post_init__(self):
        for name, allowed in self.choices().items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.architecture == "linear" and self.average != "none":
            raise ConfigError("the linear architecture does not take the average input")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int":
                if isinstance(value, bool) or not isinstance(value, int):
                    if not (isinstance(value, float) and value.is_integer()):
                        raise ConfigError(f"{field.name} must be an integer, got {value!r}")
                    object.__setattr__(self, field.name, int(value))
                    value = int(value)
                low = 0 if field.name == "n_layers" else 1
                if value < low:
                    raise ConfigError(f"{field.name} must be >= {low}, got {value}")
            elif field.type == "float":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"{field.name} must be a number, got {value!r}")
                object.__setattr__(self, field.name, float(value))
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("genome_l2", "factor_l2"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.lr <= 0 or self.embedding_init <= 0:
            raise ConfigError(
                f"lr and embedding_init must be positive, got {self.lr} and {self.embedding_init}"
            )

    @staticmethod
    def choices() -> dict[str, tuple[str, ...]]:
        """The allowed values of the options that take names."""
        return {
            "architecture": ARCHITECTURES,
            "average": AVERAGE_MODES,
            "coarse_rule": COARSE_RULES,
        }

    @property
    def n_genome_factors(self) -> int:
        """Genome features per 25-bp position (all three scales)."""
        return self.n_25bp_factors + self.n_250bp_factors + self.n_5kbp_factors

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> AvocadoConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(
                f"Unknown AvocadoConfig fields {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(**values)

    def replace(self, **changes) -> AvocadoConfig:
        """A copy with some fields changed (unknown names raise :class:`ConfigError`)."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"Unknown hyperparameter(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)

    def digest(self) -> str:
        """Short hash of the configuration, for provenance attributes."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def check_epochs(epochs) -> int:
    """``epochs`` as an int, checked (an integer >= 0: passes over the positions)."""
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
        raise ConfigError(
            f"epochs must be an integer >= 0 (passes over the positions), got {epochs!r}"
        )
    return int(epochs)
