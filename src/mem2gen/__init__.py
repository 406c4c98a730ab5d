"""mem2gen: memorization -> spurious states -> generalization in diffusion models (Pham et al. 2025)."""
from .classify import Classification, classify, label
from .errors import Mem2genError
from .neighbors import Neighbors, nearest
from .stats import bootstrap_fractions, capacities

__all__ = ["Classification", "Mem2genError", "Neighbors", "bootstrap_fractions", "capacities", "classify",
           "label", "nearest"]
__version__ = "0.1.0"
