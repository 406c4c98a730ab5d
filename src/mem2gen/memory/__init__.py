"""Associative memories: classical Hopfield, Dense Associative Memory, and the bridge to diffusion."""
from .dense import DenseAM, softmax_average

__all__ = ["DenseAM", "softmax_average"]
