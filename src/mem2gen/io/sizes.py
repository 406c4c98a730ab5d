"""Training-set size schedules (paper App. B.1, Table 1)."""
from __future__ import annotations

import numpy as np

from ..errors import Mem2genError, check
from .config import check_sizes, load_config
from .datasets import DATASETS

# Table 1: start, A, B, N (from the dataset registry)
PAPER_POINTS = {name: d.schedule for name, d in DATASETS.items() if d.schedule}


def doubling(n: int, *, start: int = 500) -> list[int]:
    """The coarse search: start, 2·start, 4·start, … below n, then n itself."""
    check(2 <= start <= n, f"doubling needs 2 <= start ({start}) <= N ({n})")
    out = []
    k = start
    while k < n:
        out.append(k)
        k *= 2
    return out + [n]


def paper(a: int, b: int, n: int, *, start: int = 2) -> list[int]:
    """5 linearly spaced sizes from start to A, 30 from A to B, 5 from B to N (A, B shared): 38 sizes."""
    check(2 <= start < a < b < n, f"the schedule needs 2 <= start < A < B < N; got {start}, {a}, {b}, {n}")
    parts = [np.linspace(start, a, 5), np.linspace(a, b, 30)[1:], np.linspace(b, n, 5)[1:]]
    return sorted({int(round(x)) for x in np.concatenate(parts)})


def resolve(spec, n_data: int) -> list[int]:
    """A schedule from a list of sizes, {"doubling": start} or {"paper": dataset | [start, A, B, N]}."""
    check_sizes(spec)
    if isinstance(spec, (list, tuple)):
        sizes = sorted({int(k) for k in spec})
    elif isinstance(spec, dict) and len(spec) == 1 and "doubling" in spec:
        sizes = doubling(n_data, start=int(spec["doubling"]))
    elif isinstance(spec, dict) and len(spec) == 1 and "paper" in spec:
        p = spec["paper"]
        if isinstance(p, str):
            check(p in PAPER_POINTS, f"no paper schedule for {p!r}; use one of {sorted(PAPER_POINTS)}")
            p = PAPER_POINTS[p]
        start, a, b, n = (int(v) for v in p)
        sizes = paper(a, b, n, start=start)
    else:
        raise Mem2genError(f"sizes {spec!r} not understood; give a list, {{doubling: 500}} or {{paper: mnist}}")
    check(len(sizes) > 0 and sizes[0] >= 2, f"training-set sizes must be at least 2; got {sizes[:3]}")
    check(sizes[-1] <= n_data, f"size {sizes[-1]} exceeds the dataset ({n_data} items); use sizes up to {n_data}")
    return sizes


def schedule(*, preset: str | None = None, paper: str | None = None, doubling_from: int | None = None,
             n: int | None = None) -> list[int]:
    """The sizes of a sweep preset, of the paper's schedule for a dataset, or a doubling from a start
    up to ``n`` (give exactly one of the three)."""
    check(sum(x is not None for x in (preset, paper, doubling_from)) == 1,
          "give exactly one of a sweep preset, a paper dataset or a doubling start")
    if doubling_from is not None:
        check(n is not None, "a doubling schedule needs the dataset size n")
        return doubling(n, start=doubling_from)
    if preset is not None:
        spec = load_config(preset).sizes
        if isinstance(spec, (list, tuple)):
            return resolve(list(spec), max(spec))
        if "doubling" in spec:
            check(n is not None, f"sweep preset {preset} doubles up to the dataset size; give n")
            return resolve(spec, n)
        paper = spec["paper"]
    return resolve({"paper": paper}, PAPER_POINTS.get(paper, (0, 0, 0, 0))[3])
