"""Associative memories: classical Hopfield, Dense Associative Memory, and the bridge to diffusion."""
from .bridge import bridge_beta, dense_energy_at, diffusion_energy, energy_agreement, normalize
from .dense import DenseAM, mixture_is_fixed_point, softmax_average
from .hopfield import Hopfield, capacity_experiment, critical_load, mixture, retrieval_curve, spurious_census

__all__ = ["DenseAM", "Hopfield", "bridge_beta", "capacity_experiment", "critical_load", "dense_energy_at",
           "diffusion_energy", "energy_agreement", "mixture", "mixture_is_fixed_point", "normalize",
           "retrieval_curve", "softmax_average",
           "spurious_census"]
