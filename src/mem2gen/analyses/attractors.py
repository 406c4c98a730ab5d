"""Are spurious states attractors? (paper Hypothesis 2.1) The attractor study of one model: groups of
starting points followed to the fixed points of the denoiser at several noise levels, with controls.

At noise level t the denoiser's fixed-point iteration h ← x̂0(√ᾱ_t h, t) (:func:`mem2gen.analyses.landscape.follow`)
is, for the exact denoiser of S_K, the DenseAM update with inverse temperature β(t) = ᾱ_t / (1 − ᾱ_t)
(paper App. C): h ← Σ_i softmax_i(−β‖h − y_i‖²/2) y_i. Its fixed points h* have ε(√ᾱ h*, t) = 0, so
z* = √ᾱ h* is a stationary point of the energy E_t = −log p_t, a minimum when ∇²E_t(z*) ≻ 0.

Per noise level and group (memorized, spurious, generalized samples of S_eval; real held-out items;
hand-made convex mixtures of 2-5 training items; and S' for basin mass) :func:`study` measures:

1. the census: end points joined within δ (:func:`mem2gen.analyses.landscape.census`), how many are training
   items, how much of each group and of S' drains into attractors that are not training items;
2. the DenseAM prediction beside it: where the exact denoiser of S_K sends the same starts;
3. stability under the sampler: the probability that a start, noised to t and denoised (DDIM), comes
   back within δ;
4. curvature: the extreme eigenvalues of ∇²E_t at each end point (exact, from the full Jacobian);
5. barriers: E_t along the segment from each non-training end point to its nearest training item,
   against the same from training items to their nearest other item.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ..core.neighbors import nearest
from ..core.stats import LABELS, model_interval
from ..errors import check
from ..io.config import ATTRACTOR_GROUPS, check_fields
from ..io.data import to_float
from ..models.diffusion import OptimalDenoiser, Schedule
from .landscape import _device, barrier, census, energy_profile, follow
from .recovery import nn_spacing, recovery_probability

GROUPS = ATTRACTOR_GROUPS


@dataclass(frozen=True)
class AttractorConfig:
    """What :func:`study` measures at one model, and with which settings."""

    ts: tuple = (5, 10, 20, 50, 100, 200, 400)  # √(1 − ᾱ_t) = 0.03, 0.05, 0.08, 0.17, 0.32, 0.59, 0.90 (where
    #                                          mixtures can be depends on S_K: ``window``, :func:`theory_window`)
    groups: tuple = GROUPS  # which starting points: labels of S_eval, real held-out items, hand-made mixtures
    per_group: int = 32  # starting points per group (fewer where a model has fewer samples of a label)
    mixture_sizes: tuple = (2, 3, 4, 5)  # hand-made mixtures: the mean of a training item and its m − 1 nearest
    n_synthetic: int = 512  # of S' followed for the basin mass of each attractor
    delta_frac: float = 0.25  # δ = this × the median nearest-neighbour spacing of S_K (as the landscape study)
    trials: int = 10  # noisings per start and t for the recovery probability (the released code's)
    steps: int = 20  # DDIM steps of each denoising run
    iters: int = 200  # fixed-point iterations at most
    barrier_pairs: int = 32  # training items whose barrier to their nearest other item is measured
    minimum_tol: float = 1e-3  # a point is a local minimum when λ_min > −minimum_tol · |λ_max|
    window: bool = False  # add the noise levels where DenseAM theory puts mixture states (:func:`theory_window`)
    window_step: int = 25  # their spacing
    control: str | None = None  # "planted": also the exact denoiser of S_K with planted mixtures, and without them
    n_planted: int = 16  # planted mixtures of 2-3 training items in the positive control
    snapshots: bool = False  # also at every EMA snapshot (over training time): its own samples, drawn and classified
    snapshot_samples: int = 256  # |S_eval| drawn at each snapshot for its groups (S': min(the run's, n_synthetic))
    seed: int = 0

    def __post_init__(self):
        check_fields(self, "attractors.")
        check(len(self.ts) >= 1 and all(isinstance(t, int) and 1 <= t < 1000 for t in self.ts),
              "ts: noise levels are whole steps in [1, 1000)")
        check(self.per_group >= 1 and self.n_synthetic >= 0 and self.trials >= 1 and self.steps >= 1
              and self.iters >= 1 and self.barrier_pairs >= 0, "per_group, trials, steps, iters >= 1; counts >= 0")
        check(all(isinstance(m, int) and m >= 2 for m in self.mixture_sizes) and len(self.mixture_sizes) >= 1,
              "mixture_sizes: whole numbers >= 2")
        check(self.delta_frac > 0 and self.minimum_tol >= 0, "delta_frac > 0 and minimum_tol >= 0")
        check(len(self.groups) >= 1 and set(self.groups) <= set(GROUPS),
              f"groups {list(self.groups)}: choose among {', '.join(GROUPS)}")
        check(isinstance(self.window_step, int) and 1 <= self.window_step < 1000,
              "window_step: a whole step in [1, 1000)")
        check(self.control in (None, "planted"), f"control {self.control!r}: the one control is 'planted'")
        check(isinstance(self.n_planted, int) and self.n_planted >= 1, "n_planted: a whole number >= 1")
        check(isinstance(self.snapshot_samples, int) and self.snapshot_samples >= 1,
              "snapshot_samples: a whole number >= 1")


def beta(t: int, schedule: Schedule = Schedule()) -> float:
    """The DenseAM inverse temperature of noise level t: β(t) = ᾱ_t / (1 − ᾱ_t) (paper App. C)."""
    a = float(schedule.alphas_cumprod[int(t)])
    return a / (1 - a)


def t_of_beta(b: float, schedule: Schedule = Schedule()) -> int:
    """The smallest step t with β(t) ≤ b (β falls with t); T − 1 when none does."""
    ab = schedule.alphas_cumprod.double()
    below = torch.nonzero(ab / (1 - ab) <= b).flatten()
    return int(below[0]) if len(below) else len(ab) - 1


def theory_window(train, *, schedule: Schedule = Schedule(), step: int = 25) -> dict:
    """The noise levels where the DenseAM analysis of the exact denoiser puts mixture states (paper App. C).

    The update h ← Σ_i w_i y_i has Jacobian β Cov_w(y) (:func:`mixture_stability`), so

    1. the symmetric mixture of two items at distance d (w = ½, ½) is a stable fixed point while
       β(t) · d²/4 < 1: from t_pair = t(β = 4 / d²) on, with d the closest pair of S_K (the first mixture)
       and, for reference, the median nearest-neighbour distance (most pairs);
    2. the mean of S_K (w uniform) is the only fixed point once β(t) · λ_max(Cov S_K) < 1: up to
       t_global = t(β = 1 / λ_max).

    Mixture states therefore live in [t_pair(closest), t_global]; ``ts`` samples it every ``step``."""
    y = to_float(np.asarray(train)).reshape(len(train), -1).astype(np.float64)
    check(len(y) >= 2, "the theory window needs at least two training items")
    d = nearest(np.asarray(train), np.asarray(train), 1, exclude_self=True, device="cpu").distances[:, 0]
    d_min, d_med = float(d.min()), float(np.median(d))
    lam = float(np.linalg.eigvalsh(np.cov(y.T, bias=True))[-1])
    b_pair, b_med, b_glob = 4 / max(d_min, 1e-12) ** 2, 4 / max(d_med, 1e-12) ** 2, 1 / lam
    t_from, t_med, t_to = t_of_beta(b_pair, schedule), t_of_beta(b_med, schedule), t_of_beta(b_glob, schedule)
    first = -(-t_from // step) * step
    return {"d_min": d_min, "d_median": d_med, "lambda_max": lam, "beta_pair": b_pair, "beta_pair_median": b_med,
            "beta_global": b_glob, "t_from": t_from, "t_median_pair": t_med, "t_to": t_to,
            "ts": list(range(max(first, step), t_to + 1, step))}


def planted_control(train, groups: dict, cfg: "AttractorConfig", *, schedule: Schedule = Schedule(),
                    progress=None) -> dict:
    """The positive control of the study (``control="planted"``): ``cfg.n_planted`` mixtures P of 2-3
    training items (:func:`mixtures`) planted as extra patterns of the exact denoiser (the DenseAM of
    S_K ∪ P, whose attractors at small t are S_K and P, by construction), and the exact denoiser of S_K
    alone; both through :func:`study` with the same starts: "planted" (each state of P moved by δ/2 in a
    random direction), and the real held-out items and hand-made mixtures of ``groups``. Returns
    ``{"planted control": result, "exact S_K": result}``; the census counts P as not training items."""
    y = to_float(np.asarray(train))
    p, _ = mixtures(train, cfg.n_planted, (2, 3), seed=cfg.seed + 1)
    spacing = nn_spacing(np.asarray(train))
    rng = np.random.default_rng(cfg.seed + 2)
    u = rng.standard_normal(p.shape).astype(np.float32)
    u /= np.linalg.norm(u.reshape(len(u), -1), axis=1).reshape(-1, *[1] * (u.ndim - 1))
    starts = {"planted": p + 0.5 * cfg.delta_frac * spacing * u,
              **{g: groups[g] for g in ("held-out", "mixture") if g in groups}}
    sub = dataclasses.replace(cfg, n_synthetic=0, control=None)
    out = {}
    for name, patterns in (("planted control", np.concatenate([y, p])), ("exact S_K", y)):
        if progress:
            progress(f"control: {name}")
        out[name] = study(OptimalDenoiser(patterns, schedule=schedule), y, starts, [], sub, schedule=schedule,
                          exact=False, progress=progress)
    return out


def mixtures(train, n: int, sizes=(2, 3, 4, 5), *, seed: int = 0) -> tuple[np.ndarray, list]:
    """``n`` hand-made mixture states (floats in [-1, 1]): the equal-weight mean of a random training item
    and its m − 1 nearest other items, m cycling through ``sizes`` (the symmetric mixtures of Hopfield and
    DenseAM theory). Returns the states and each one's parents."""
    y = to_float(np.asarray(train))
    rng = np.random.default_rng(seed)
    m_max = min(max(sizes), len(y))
    anchors = rng.choice(len(y), size=n, replace=len(y) < n)
    nb = nearest(np.asarray(train)[anchors], np.asarray(train), m_max, device="cpu")
    states, parents = [], []
    for i in range(n):
        m = min(sizes[i % len(sizes)], len(y))
        idx = nb.indices[i, :m]  # the anchor itself first (distance 0), then its nearest others
        states.append(y[idx].mean(0))
        parents.append(idx.tolist())
    return np.stack(states).astype(np.float32), parents


def mixture_stability(train, x, t: int, *, schedule: Schedule = Schedule()) -> np.ndarray:
    """The DenseAM analysis at β(t): the spectral radius of the exact update's Jacobian at each state x,
    ρ = β(t) · λ_max(Cov_w(y)) with w = softmax(−β‖x − y_i‖²/2) (the update's derivative is β Cov_w). A
    fixed point with ρ < 1 is stable; one with ρ > 1 splits towards its patterns."""
    y = torch.as_tensor(to_float(np.asarray(train)), dtype=torch.float64).reshape(len(train), -1)
    xs = torch.as_tensor(np.asarray(x), dtype=torch.float64).reshape(len(x), -1)
    b = beta(t, schedule)
    w = torch.softmax(-b * torch.cdist(xs, y) ** 2 / 2, dim=1)  # (n, K)
    out = []
    for i in range(len(xs)):
        mean = w[i] @ y
        c = (y - mean).T @ (w[i, :, None] * (y - mean))
        out.append(b * float(torch.linalg.eigvalsh(c)[-1]))
    return np.asarray(out)


def hessian_extremes(model, z, t: int, *, schedule: Schedule = Schedule(), batch: int = 16) -> np.ndarray:
    """(n, 2): the smallest and largest eigenvalue of ∇²E_t = (∂ε/∂z)/√(1 − ᾱ_t), symmetrised, at each
    row of ``z`` (points in x_t space), from the full Jacobian (``torch.func.jacfwd``): exact, for images
    small enough to hold d × d per point (d = 64 on 8×8 digits, 196 on 14×14)."""
    dev = _device(model)
    z = torch.as_tensor(np.asarray(z), dtype=torch.float32).to(dev)
    shape = tuple(getattr(model, "sample_shape", z.shape[1:]))
    d = z[0].numel()
    check(d <= 4096, f"hessian_extremes forms d × d = {d} × {d} per point; use mem2gen.analyses.landscape.hessian_eigs")
    scale = float(1 / (1 - schedule.alphas_cumprod[int(t)]).sqrt())
    tt = torch.full((1,), int(t), dtype=torch.long, device=dev)

    def eps(v):  # one flat point -> its ε, flat
        return model(v.reshape(1, *shape), tt).reshape(-1).float()

    out = []
    with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
        for i in range(0, len(z), batch):
            jac = torch.vmap(torch.func.jacfwd(eps))(z[i:i + batch].reshape(-1, d).float())  # (b, d, d)
            h = scale * 0.5 * (jac + jac.transpose(1, 2)).double()
            ev = torch.linalg.eigvalsh(h)
            out.append(torch.stack([ev[:, 0], ev[:, -1]], 1).detach().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 2))


def study(model, train, groups: dict, synthetic, cfg: AttractorConfig = AttractorConfig(), *,
          schedule: Schedule = Schedule(), exact: bool = True, progress=None) -> dict:
    """The attractor study of ``model`` (an ε-model) trained on ``train``: ``groups`` maps a name to its
    starting points (floats in [-1, 1]); ``synthetic``: S' (its first ``cfg.n_synthetic`` are followed).
    Returns ``{"delta", "spacing", "census": [...], "points": [...], "barriers": [...]}``: one census row
    per (t, group), one row per followed start (its end, curvature, recovery), one per barrier."""
    say = progress or (lambda *a: None)
    y = to_float(np.asarray(train))
    spacing = nn_spacing(np.asarray(train)) if len(y) > 1 else float("nan")
    delta = cfg.delta_frac * spacing if len(y) > 1 else 0.1
    names = [g for g in groups if len(groups[g])]
    starts = [to_float(np.asarray(groups[g])) for g in names]
    if cfg.n_synthetic and len(synthetic):
        syn = to_float(np.asarray(synthetic[:cfg.n_synthetic]))
    else:
        syn = np.zeros((0, *y.shape[1:]), np.float32)
    xs = np.concatenate(starts + [syn]).astype(np.float32)
    owner = np.concatenate([np.full(len(s), i) for i, s in enumerate(starts)] + [np.full(len(syn), -1)]).astype(int)
    exact_model = OptimalDenoiser(y, schedule=schedule) if exact else None
    out = {"delta": delta, "spacing": spacing, "census": [], "points": [], "barriers": []}
    dev = _device(model)
    if cfg.barrier_pairs and len(y) > 1:  # the training items whose barrier to their nearest other item is drawn
        pick = np.random.default_rng(cfg.seed).permutation(len(y))[:cfg.barrier_pairs]
        pair = nearest(y, y, 1, exclude_self=True, device="cpu")  # every item's nearest other item
    for t in cfg.ts:
        say(f"t = {t}: fixed points, census")
        a = float(schedule.alphas_cumprod[int(t)])
        ends = follow(model, torch.as_tensor(xs).to(dev), t=t, iters=cfg.iters, schedule=schedule).float().cpu()
        z = (a ** 0.5) * ends
        with torch.no_grad():  # the fixed-point residual ‖x̂0(√ᾱ h) − h‖ of each end
            tt = torch.full((len(z),), int(t), dtype=torch.long)
            eps = torch.cat([model(z[i:i + 4096].to(dev), tt[i:i + 4096].to(dev)).float().cpu()
                             for i in range(0, len(z), 4096)])
            x0 = ((z - (1 - a) ** 0.5 * eps) / a ** 0.5).clamp(-1, 1)
            residual = (x0 - ends).reshape(len(z), -1).norm(dim=1).numpy()
        ends, z = ends.reshape(len(xs), -1), z.reshape(len(xs), -1)
        cen = census(ends.numpy(), delta=delta, train=y)
        on_item = cen.training_item[cen.component] >= 0  # each end: its attractor sits on a training item
        stays = (ends - torch.as_tensor(xs)).reshape(len(xs), -1).norm(dim=1).numpy() <= delta
        n_syn = int((owner == -1).sum())
        syn_mass = np.bincount(cen.component[owner == -1], minlength=cen.n_attractors) / max(n_syn, 1)
        if exact_model is not None:
            ex_ends = follow(exact_model, torch.as_tensor(xs[owner >= 0]), t=t, iters=cfg.iters,
                             schedule=schedule).float()
            ex_cen = census(ex_ends.numpy(), delta=delta, train=y)
            ex_item = ex_cen.training_item[ex_cen.component] >= 0
            rho = mixture_stability(y, ex_ends.numpy(), t, schedule=schedule)
        say(f"t = {t}: recovery and curvature")
        rec = recovery_probability(model, xs[owner >= 0], t, delta=delta, trials=cfg.trials, steps=cfg.steps,
                                   schedule=schedule, seed=cfg.seed + t)
        eig = hessian_extremes(model, z[owner >= 0].numpy(), t, schedule=schedule)
        is_min = eig[:, 0] > -cfg.minimum_tol * np.abs(eig[:, 1])
        converged = residual <= 1e-3 * np.sqrt(y[0].size)
        level = {"t": t, "beta": beta(t, schedule), "sigma": (1 - a) ** 0.5, "noise_norm": ((1 - a) * y[0].size) ** 0.5,
                 "delta": delta}
        for gi, g in enumerate(names):
            sel = owner == gi
            comp = cen.component[sel]
            non = ~on_item[sel]
            non_attr = np.unique(comp[non])
            row = {**level, "group": g, "n": int(sel.sum()),
                   "attractors": int(len(np.unique(comp))), "nontraining_attractors": int(len(non_attr)),
                   "to_training": float(np.mean(~non)), "stays": float(np.mean(stays[sel])),
                   "nontraining_sprime_mass": float(syn_mass[non_attr].sum()) if n_syn else None,
                   "largest_nontraining_sprime_mass": (float(syn_mass[non_attr].max()) if n_syn and len(non_attr)
                                                       else 0.0),
                   "recovery": float(np.mean(rec[sel[owner >= 0]])),
                   "minimum_share": float(np.mean(is_min[sel[owner >= 0]])),
                   "converged": float(np.mean(converged[sel]))}
            if exact_model is not None:
                sub = sel[owner >= 0]
                row |= {"exact_to_training": float(np.mean(ex_item[sub])),
                        "exact_stable_mixtures": float(np.mean(~ex_item[sub] & (rho[sub] < 1)))}
            out["census"].append(row)
        if n_syn:
            non_syn = ~on_item[owner == -1]
            out["census"].append({**level, "group": "S'", "n": n_syn,
                                  "attractors": int(len(np.unique(cen.component[owner == -1]))),
                                  "nontraining_attractors": int(len(np.unique(cen.component[owner == -1][non_syn]))),
                                  "to_training": float(np.mean(~non_syn)), "stays": float(np.mean(stays[owner == -1])),
                                  "converged": float(np.mean(converged[owner == -1]))})
        for j, i in enumerate(np.flatnonzero(owner >= 0)):
            out["points"].append({"t": t, "group": names[owner[i]], "i": int(j), "to_training": bool(on_item[i]),
                                  "lambda_min": float(eig[j, 0]), "lambda_max": float(eig[j, 1]),
                                  "minimum": bool(is_min[j]), "recovery": float(rec[j]),
                                  "residual": float(residual[i])})

        say(f"t = {t}: barriers")
        sq = a ** 0.5
        # 5. non-training end points of every group (distinct attractors) against their nearest item
        firsts = {}
        for i in np.flatnonzero((owner >= 0) & ~on_item):
            firsts.setdefault(int(cen.component[i]), i)
        kinds = []
        if firsts:
            idx = np.array(list(firsts.values()))
            nb = nearest(ends[idx].numpy(), y, 1, device="cpu")
            kinds.append(("attractor", [names[owner[i]] for i in idx], ends[idx], torch.as_tensor(y[nb.indices[:, 0]]),
                          nb.distances[:, 0]))
        if cfg.barrier_pairs and len(y) > 1:
            kinds.append(("training pair", ["training item"] * len(pick), torch.as_tensor(y[pick]),
                          torch.as_tensor(y[pair.indices[pick, 0]]), pair.distances[pick, 0]))
        for kind, groups_of, a_pts, b_pts, dist in kinds:
            _, prof = energy_profile(model, (sq * a_pts).to(dev), (sq * b_pts).to(dev), t, schedule=schedule)
            for g, bar, d in zip(groups_of, barrier(prof), dist):
                out["barriers"].append({"t": t, "kind": kind, "group": g, "barrier": float(bar), "distance": float(d)})
    return out


def point_groups(point, cfg: AttractorConfig) -> dict:
    """The starting points of a classified sweep point (a :class:`mem2gen.runs.run.Point`): up to
    ``cfg.per_group`` samples of S_eval per label (in S_eval's order), as many real items held out of S_K,
    and as many hand-made mixtures of its training items."""

    out = {}
    ev, lab = np.asarray(point.eval), point.labels.labels
    for j, name in enumerate(LABELS):
        if name in cfg.groups:
            out[name] = ev[np.flatnonzero(lab == j)[:cfg.per_group]]
    if "held-out" in cfg.groups:
        out["held-out"] = point.held_out(cfg.per_group, [cfg.seed, point.k, 0xA77])
    if "mixture" in cfg.groups and point.k >= 2:
        out["mixture"] = mixtures(point.train_set, cfg.per_group, cfg.mixture_sizes, seed=cfg.seed)[0]
    return out


def snapshot_starts(point, step: int, cfg: AttractorConfig, *, device=None) -> tuple:
    """The model at EMA snapshot ``step`` of a point, its starts and its S': ``cfg.snapshot_samples`` samples
    drawn with the run's sampler and classified (eqs 1-2) against S_K and the snapshot's own S' (the seeds
    of ``mem2gen dynamics``), grouped by label as :func:`point_groups`; held-out items and mixtures as there."""
    from ..core.rule import classify
    from ..models.networks import load_model
    from .points import draw_samples, snapshot_path, snapshot_seed

    run = point.config
    model = load_model(snapshot_path(point, step), device=device).eval()
    n_syn = min(run.n_synthetic(point.k), max(cfg.n_synthetic, 2))
    syn = draw_samples(model, n_syn, seed=snapshot_seed(point, step, 1), cfg=run, device=device)
    ev = draw_samples(model, cfg.snapshot_samples, seed=snapshot_seed(point, step, 0), cfg=run, device=device)
    c = classify(ev, point.train_set, syn, distance=run.distance, delta_m=run.delta_m, delta_s=run.delta_s,
                 device=device, check_duplicates=False, pixel_range="-1,1")
    groups = {g: v for g, v in point_groups(point, cfg).items() if g not in LABELS}
    groups |= {name: ev[np.flatnonzero(c.labels == j)[:cfg.per_group]] for j, name in enumerate(LABELS)
               if name in cfg.groups}
    return model, groups, syn[:cfg.n_synthetic]


def analyze_point(point, cfg: AttractorConfig = AttractorConfig(), *, device=None, progress=None) -> dict:
    """:func:`study` at one classified sweep point: its EMA model, S_K, :func:`point_groups` and S'; with
    ``cfg.window`` also at the noise levels of :func:`theory_window`, with ``cfg.control`` the
    :func:`planted_control`, with ``cfg.snapshots`` at every EMA snapshot too (:func:`snapshot_starts`).
    Every census, point and barrier row names its ``model`` and ``step`` (the controls, which do not train,
    carry the final step)."""
    from .points import snapshot_steps

    train, final = point.train_set, point.config.train.steps
    window = theory_window(train, step=cfg.window_step) if cfg.window and point.k >= 2 else None
    if window:
        cfg = dataclasses.replace(cfg, ts=tuple(sorted(set(cfg.ts) | set(window["ts"]))))
    groups = point_groups(point, cfg)
    res = {("trained", final): study(point.load_model(device=device), train, groups, point.synthetic, cfg,
                                     progress=progress)}
    for step in (s for s in (snapshot_steps(point) if cfg.snapshots else []) if s != final):
        if progress:
            progress(f"K={point.k}: snapshot at step {step}")
        model, starts, syn = snapshot_starts(point, step, cfg, device=device)
        res[("trained", step)] = study(model, train, starts, syn, cfg, progress=progress)
    if cfg.control == "planted":
        res |= {(name, final): r for name, r in planted_control(train, groups, cfg, progress=progress).items()}
    first = res[("trained", final)]
    out = {"K": point.k, "replicate": point.replicate, "window": window,
           "delta": first["delta"], "spacing": first["spacing"]}
    for part in ("census", "points", "barriers"):
        out[part] = [{"model": name, "step": step, **row,
                      "in_window": bool(window and window["t_from"] <= row["t"] <= window["t_to"])}
                     for (name, step), r in res.items() for row in r[part]]
    return out


def per_model(census_rows: list, point_rows: list, barrier_rows: list):
    """One row per (K, replicate, t, group) (a pandas DataFrame): the census row with the model's median
    curvature over its end points and median barrier; training pairs as the group "training pair"."""
    import pandas as pd

    def framed(rows):  # records of earlier versions: the trained model's, outside any window
        df = pd.DataFrame(rows)
        return df if not len(df) or "model" in df else df.assign(model="trained", in_window=False)

    cen, pts, bars = framed(census_rows), framed(point_rows), framed(barrier_rows)
    key = [c for c in ("model", "K", "replicate", "step", "t", "group") if c in cen]
    if len(pts):
        curv = pts.groupby(key).agg(lambda_min=("lambda_min", "median"),
                                    lambda_max=("lambda_max", "median")).reset_index()
        cen = cen.merge(curv, on=key, how="left")
    if len(bars):  # barriers from non-training end points, by the group they came from; training pairs apart
        bars = bars.assign(group=bars["group"].where(bars["kind"] != "training pair", "training pair"))
        b = bars.groupby(key).agg(barrier=("barrier", "median"), n_barriers=("barrier", "size")).reset_index()
        level = [c for c in key if c != "group"]
        pairs = b[b["group"] == "training pair"].merge(
            cen[[c for c in (*level, "sigma", "beta", "noise_norm", "delta", "in_window")
                 if c in cen]].drop_duplicates(),
            on=level)
        cen = pd.concat([cen.merge(b, on=key, how="left"), pairs.assign(n=pairs["n_barriers"])], ignore_index=True)
    return cen


def summarize(census_rows: list, point_rows: list, barrier_rows: list) -> list[dict]:
    """Model-level summary per (model, K, [step,] t, group) of :func:`per_model`'s rows (model: the trained one, or a
    control's): the mean over models with its
    t-interval (:func:`mem2gen.core.stats.model_interval`; with one model, no interval: between-model variance
    unmeasured); per step too, for records made with snapshots."""
    import pandas as pd

    cen = per_model(census_rows, point_rows, barrier_rows)
    measures = [c for c in ("to_training", "nontraining_attractors", "nontraining_sprime_mass", "stays", "recovery",
                            "minimum_share", "converged", "exact_to_training", "exact_stable_mixtures", "lambda_min",
                            "lambda_max", "barrier") if c in cen]
    fractions = {"to_training", "nontraining_sprime_mass", "stays", "recovery", "minimum_share", "converged",
                 "exact_to_training", "exact_stable_mixtures"}
    out = []
    by = [c for c in ("model", "K", "step", "t", "group") if c in cen]  # step: records made with snapshots
    for key, rows in cen.groupby(by, sort=True, dropna=False):
        name, k, t, g, step = *(key[i] for i, c in enumerate(by) if c != "step"), \
            (key[by.index("step")] if "step" in by else None)
        row = {"model": name, "K": int(k), **({"step": None if pd.isna(step) else int(step)} if "step" in by else {}),
               "t": int(t), "in_window": bool(rows["in_window"].any()),
               "sigma": float(rows["sigma"].iloc[0]), "beta": float(rows["beta"].iloc[0]),
               "noise_norm": float(rows["noise_norm"].iloc[0]) if "noise_norm" in rows else None,
               "delta": float(rows["delta"].mean()) if "delta" in rows else None,
               "group": g, "n_models": int(len(rows)), "n_per_model": int(rows["n"].min())}
        for m in measures:
            v = rows[m].dropna().to_numpy(dtype=float)
            if not len(v):
                continue
            iv = model_interval(v, fraction=m in fractions)
            row |= {m: iv["mean"], f"{m}_lo95": iv["ci95"][0], f"{m}_hi95": iv["ci95"][1]}
        out.append(row)
    return out
