"""The landscape study of one classified sweep point (``mem2gen landscape``): recovery times of
samples and training items, energy profiles and curvature per label, an attractor census against
|S'| and the mixture test, with the tools of :mod:`mem2gen.analyses.landscape`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.embed import default_device
from ..core.stats import LABELS
from ..errors import check
from ..io.config import check_fields
from ..io.data import to_float
from ..models.diffusion import Schedule
from .calibration import synthetic_curve
from .landscape import barrier, census, energy_profile, follow, hessian_eigs, mixture_fit
from .recovery import nn_spacing, recovery_times


@dataclass(frozen=True)
class LandscapeConfig:
    """What :func:`analyze` measures at a sweep point, and with which settings (defaults justified)."""

    n_samples: int = 200  # S_eval samples (and training items) whose recovery times are measured
    delta_frac: float = 0.25  # δ = this × the median nearest-neighbour spacing of S_K: a return within
    #                           δ cannot be mistaken for the neighbouring training item
    p: float = 0.9  # recovery probability (the released code's)
    trials: int = 10  # forward noises per sample and t (the released code's)
    steps: int = 20  # DDIM steps of each reverse run (the released code's)
    t_energy: int = 100  # step of the energy profiles and the curvature: √(1 − ᾱ) ≈ 0.32, the scale
    #                      at which nearby training items' basins are told apart
    n_profiles: int = 10  # samples per label whose energy profiles to their two nearest items are drawn
    n_curvature: int = 4  # samples per label whose Hessian spectrum is probed
    k_eigs: int = 3
    t_follow: int = 50  # noise level of the denoiser fixed-point iteration that finds attractors
    max_follow: int = 4096  # at most this many of S' are followed
    mixture_m: tuple = (2, 3, 4, 5)
    mixture_explained: float = 1 / 3  # a mixture explains x when its residual ≤ this × d(x, x1)
    seed: int = 0

    def __post_init__(self):
        check_fields(self)
        check(self.seed >= 0, "the seed must be a whole number >= 0")
        check(self.n_samples >= 1 and self.trials >= 1 and self.steps >= 1, "n_samples, trials, steps >= 1")
        check(0 < self.delta_frac and 0 < self.p <= 1, "delta_frac > 0 and 0 < p <= 1")
        check(0 <= self.t_energy < 1000 and 0 <= self.t_follow < 1000, "t_energy and t_follow lie in [0, T)")


def analyze(point, cfg: LandscapeConfig = LandscapeConfig(), *, device=None, progress: bool = True) -> dict:
    """Recovery times, energy profiles, curvature, attractor census and mixture test at one classified
    sweep point (a :class:`mem2gen.runs.run.Point`). Returns a JSON-able dict (see ``mem2gen landscape``)."""
    say = print if progress else (lambda *a, **k: None)
    device = str(device or default_device())  # all of it where the model is: CUDA when present
    model = point.load_model(device=device)
    train, ev, syn, lab = point.train_set, np.asarray(point.eval), point.synthetic, point.labels
    rc = point.config
    sched = Schedule()
    delta = cfg.delta_frac * nn_spacing(train, device=device)
    out = {"K": point.k, "delta": delta, "settings": cfg.__dict__ | {"mixture_m": list(cfg.mixture_m)}}
    groups = {"training item": np.arange(min(cfg.n_samples, len(train)))}
    for j, name in enumerate(LABELS):
        groups[name] = np.flatnonzero(lab.labels[:cfg.n_samples] == j)

    # recovery times: training items and S_eval by label, one batched bisection for all
    say(f"K={point.k}: recovery times (δ = {delta:.3g})")
    xs = np.concatenate([to_float(np.asarray(train)[groups["training item"]]), to_float(ev[:cfg.n_samples])])
    rec = recovery_times(model, xs, delta=delta, p=cfg.p, trials=cfg.trials, steps=cfg.steps, schedule=sched,
                         seed=cfg.seed)
    n_tr = len(groups["training item"])
    rows = {"training item": slice(0, n_tr)}
    out["recovery"] = {}
    for name, idx in groups.items():
        sel = rec.t_c[rows[name]] if name == "training item" else rec.t_c[n_tr + idx]
        rad = rec.radius[rows[name]] if name == "training item" else rec.radius[n_tr + idx]
        out["recovery"][name] = {"n": int(len(sel)), "t_c": sel.tolist(), "radius": rad.tolist(),
                                 **({"median_t_c": float(np.median(sel)), "median_radius": float(np.median(rad))}
                                    if len(sel) else {})}

    # energy profiles from samples to their two nearest training items, and curvature there
    say(f"K={point.k}: energy profiles and curvature at t = {cfg.t_energy}")
    out["energy"], out["curvature"] = {}, {}
    ytrain = np.asarray(train)
    for j, name in enumerate(LABELS):
        idx = np.flatnonzero(lab.labels == j)
        prof_idx = idx[:cfg.n_profiles]
        if len(prof_idx):
            entries = []
            for rank in (0, 1):
                tgt = ytrain[lab.i_train[prof_idx, rank]]
                s, prof = energy_profile(model, ev[prof_idx], tgt, cfg.t_energy, schedule=sched)
                entries.append({"to": f"x{rank + 1}", "s": s.tolist(), "profile": prof.tolist(),
                                "barrier": barrier(prof).tolist(), "end": prof[:, -1].tolist()})
            out["energy"][name] = {"samples": prof_idx.tolist(), "paths": entries,
                                   "separate_basin": float(np.mean(np.minimum(
                                       np.asarray(entries[0]["barrier"]), np.asarray(entries[1]["barrier"])) > 0))}
        eig = []
        for i in idx[:cfg.n_curvature]:
            e = hessian_eigs(model, ev[i:i + 1], cfg.t_energy, k=cfg.k_eigs, schedule=sched, seed=cfg.seed)
            eig.append(e.values.tolist())
        if eig:
            smallest = np.asarray(eig)[:, 0]
            out["curvature"][name] = {"samples": idx[:cfg.n_curvature].tolist(), "smallest": eig,
                                      "minimum_fraction": float(np.mean(smallest > 0)),
                                      "median_smallest": float(np.median(smallest))}

    # attractor census against |S'|, beside eq 5's spurious fraction on the same subsets of S'
    say(f"K={point.k}: attractor census")
    m_all = min(len(syn), cfg.max_follow)
    ends = follow(model, np.asarray(syn[:m_all]), t=cfg.t_follow, schedule=sched).cpu().numpy()
    sizes = sorted({m for m in [point.k * 2 ** i for i in range(20)] if m <= m_all} | {m_all})
    eq5 = synthetic_curve(ev, train, syn, sizes, distance=rc.distance, delta_m=rc.delta_m, delta_s=rc.delta_s,
                          device=device)
    curve = []
    for m, e in zip(sizes, eq5):
        full = census(ends[:m], delta=delta, train=train)  # the last one is the census of every end point
        curve.append({"m": int(m), "attractors": full.n_attractors, "training_attractors": full.n_training,
                      "largest_occupancy": int(full.occupancy[0]), "spurious_eq5": e["spurious"]})
    out["census"] = {"curve": curve, "n_attractors": full.n_attractors, "n_training": full.n_training,
                     "occupancy": full.occupancy.tolist()[:50],
                     "non_training_occupied": int(full.occupancy[full.training_item < 0].sum())}

    # mixture test (Hypothesis 2.1)
    say(f"K={point.k}: mixture test")
    out["mixture"] = {}
    for j, name in enumerate(LABELS):
        idx = np.flatnonzero(lab.labels == j)[:cfg.n_samples]
        if not len(idx):
            continue
        per_m, examples = {}, []
        for m in cfg.mixture_m:
            if m > len(train):
                continue
            fit = mixture_fit(ev[idx], train, m=m, device=device)
            per_m[str(m)] = {"explained": float(np.mean(fit.relative <= cfg.mixture_explained)),
                             "median_relative": float(np.median(fit.relative))}
            if m == 3 or (m == min(cfg.mixture_m) and not examples):  # the best-explained, for the figure
                examples = [{"sample": int(idx[i]), "parents": fit.parents[i].tolist(),
                             "weights": fit.weights[i].round(4).tolist(), "relative": float(fit.relative[i])}
                            for i in np.argsort(fit.relative)[:4]]
        out["mixture"][name] = {"n": int(len(idx)), "by_m": per_m, "examples": examples}
    return out
