"""Time scales from a (K, training step) table: when a fraction first crosses a level (τ_mem), the
snapshots that bracket it, and the power law τ_mem ∝ K^a with an interval that holds both label noise
and the snapshot grid (used by :mod:`mem2gen.analyses.dynamics`)."""
from __future__ import annotations

import math

import numpy as np

from ..errors import check


def crossing(steps, fractions, level: float) -> tuple[float | None, str]:
    """The first step at which ``fractions`` reaches ``level``, interpolated linearly in log step between
    the bracketing snapshots. Returns (τ, status): status 'ok', 'before' (already at the first
    snapshot: τ is that step, an upper bound) or 'never' (τ None)."""
    s, f = np.asarray(steps, float), np.asarray(fractions, float)
    hit = np.flatnonzero(f >= level)
    if not len(hit):
        return None, "never"
    i = int(hit[0])
    if i == 0:
        return float(s[0]), "before"
    a = (level - f[i - 1]) / (f[i] - f[i - 1])
    return float(math.exp(math.log(s[i - 1]) + a * (math.log(s[i]) - math.log(s[i - 1])))), "ok"


def fit_power_law(k, tau) -> tuple[float, float]:
    """(a, c) of the least-squares line log τ = c + a log K."""
    k, tau = np.asarray(k, float), np.asarray(tau, float)
    check(len(k) >= 2 and len(np.unique(k)) >= 2, "a power-law fit needs at least two sizes")
    a, c = np.polyfit(np.log(k), np.log(tau), 1)
    return float(a), float(c)


def tau_table(rows: list[dict], *, level: float = 0.5) -> dict:
    """τ_mem at ``level`` per K from (K, step) rows: {K: (τ, status)}."""
    out = {}
    for k in sorted({r["K"] for r in rows}):
        rs = sorted((r for r in rows if r["K"] == k), key=lambda r: r["step"])
        out[k] = crossing([r["step"] for r in rs], [r["frac_memorized"] for r in rs], level)
    return out


def bracket(steps, fractions, level: float) -> tuple[float, float] | None:
    """The two snapshots between which ``fractions`` first reaches ``level`` (None if not bracketed)."""
    hit = np.flatnonzero(np.asarray(fractions, float) >= level)
    return None if not len(hit) or hit[0] == 0 else (float(steps[hit[0] - 1]), float(steps[hit[0]]))


def fit_tau_mem(rows: list[dict], *, level: float = 0.5, iterations: int = 1000, seed: int = 0) -> dict:
    """τ_mem(K) ∝ K^a: the exponent from the τ's bracketed by two snapshots, and a 95% interval from
    draws that resample each (K, step)'s labels (memorized count ~ Binomial(n_eval, fraction)) and place
    each τ anywhere in its bracket (uniform in log step: snapshots only tell that τ lies between them,
    so the interval holds that censoring too; ``ci95_labels_only`` is the interpolated τ's); and the
    local slopes between neighbouring sizes with theirs."""
    taus = tau_table(rows, level=level)
    ok = {k: t for k, (t, status) in taus.items() if status == "ok"}
    out = {"level": level, "K": sorted(ok), "tau": [ok[k] for k in sorted(ok)], "a": None, "c": None, "ci95": None,
           "n_sizes": len(ok)}
    if len(ok) < 2:
        out["reason"] = f"τ_mem is bracketed by two snapshots at {len(ok)} size(s); the fit needs two or more"
        return out
    out["a"], out["c"] = fit_power_law(list(ok), list(ok.values()))
    rng = np.random.default_rng(seed)
    by_k = {k: sorted((r for r in rows if r["K"] == k), key=lambda r: r["step"]) for k in taus}
    draws, plain, local = [], [], {pair: [] for pair in zip(out["K"], out["K"][1:])}
    for _ in range(iterations):
        kk, tt, tc = [], [], []
        for k, rs in by_k.items():
            f = [rng.binomial(r["n_eval"], r["frac_memorized"]) / r["n_eval"] for r in rs]
            steps = [r["step"] for r in rs]
            t, status = crossing(steps, f, level)
            if status == "ok":
                lo, hi = bracket(steps, f, level)
                kk.append(k)
                tt.append(t)
                tc.append(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        if len(set(kk)) >= 2:
            draws.append(fit_power_law(kk, tc)[0])
            plain.append(fit_power_law(kk, tt)[0])
            at = dict(zip(kk, tc))
            for a, b in local:
                if a in at and b in at:
                    local[(a, b)].append(math.log(at[b] / at[a]) / math.log(b / a))
    if draws:
        out["ci95"] = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))]
        out["ci95_labels_only"] = [float(np.percentile(plain, 2.5)), float(np.percentile(plain, 97.5))]
        out["defined"] = len(draws) / iterations
    out["local"] = [{"K": [a, b], "slope": math.log(ok[b] / ok[a]) / math.log(b / a),
                     "ci95": [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else None}
                    for (a, b), v in local.items()]
    if len(ok) < 3:
        out["reason"] = "two sizes only: the line passes through both, and the interval reflects label noise alone"
    return out


def censored_units(rows: list[dict], *, level: float = 0.5) -> list[dict]:
    """One unit per model (K and, where rows carry it, ``replicate``): where its memorized fraction first
    reaches ``level`` between its snapshots. ``status``: "interval" (τ in (lo, hi]), "left" (already at the
    first snapshot: τ ≤ hi) or "right" (never reached: τ > lo). No unit is dropped."""
    out = []
    for key in sorted({(r["K"], r.get("replicate", 0)) for r in rows}):
        rs = sorted((r for r in rows if (r["K"], r.get("replicate", 0)) == key), key=lambda r: r["step"])
        steps = [float(r["step"]) for r in rs]
        hit = np.flatnonzero(np.asarray([r["frac_memorized"] for r in rs], float) >= level)
        if not len(hit):
            out.append({"K": key[0], "replicate": key[1], "lo": steps[-1], "hi": None, "status": "right"})
        elif hit[0] == 0:
            out.append({"K": key[0], "replicate": key[1], "lo": None, "hi": steps[0], "status": "left"})
        else:
            out.append({"K": key[0], "replicate": key[1], "lo": steps[hit[0] - 1], "hi": steps[hit[0]],
                        "status": "interval"})
    return out


def _censored_loglik(logk, loglo, loghi, a: float, c: float, sigma: float) -> float:
    """log L of log τ = c + a log K + σ·N(0, 1) given each unit's censoring: log τ in (loglo, loghi], with
    −inf / +inf for an open side (left- and right-censored units)."""
    from scipy.special import ndtr

    mu = c + a * logk
    p = ndtr((loghi - mu) / sigma) - ndtr((loglo - mu) / sigma)
    return float(np.log(np.maximum(p, 1e-300)).sum())


def fit_censored(units: list[dict], *, sigma_min: float = 0.05, grid=None) -> dict:
    """τ_mem ∝ K^a from every size, censored ones included: maximum likelihood of
    log τ_K = c + a log K + σ ε (ε standard normal) where each model tells only an interval for its τ
    (:func:`censored_units`: between two snapshots, before the first, or after the last), with a 95%
    profile-likelihood interval for a (2 Δ log L ≤ 3.84).

    Parameters
    ----------
    units : list of dict
        ``K``, ``lo``, ``hi`` per model (None for an open side).
    sigma_min : float
        The smallest scatter of log τ about the line allowed (5%): with σ → 0 every line through all the
        intervals is equally likely, and the interval for a is then the range of such lines.
    grid : array, optional
        The values of a profiled (default −1 … 3: a coarse pass, then steps of 0.01 where the interval is).

    Returns
    -------
    dict
        ``a``, ``c``, ``sigma``, ``ci95`` (None at an end of the grid: unbounded there), ``loglik``, and the
        counts of interval-, left- and right-censored units.
    """
    from scipy.optimize import minimize

    counts = {s: sum(u["status"] == s for u in units) for s in ("interval", "left", "right")}
    out = {"a": None, "c": None, "sigma": None, "ci95": None, "n_units": len(units), **{f"n_{s}": n for s, n in
                                                                                          counts.items()}}
    if len({u["K"] for u in units}) < 2:
        out["reason"] = "a fit needs units at two sizes or more"
        return out
    logk = np.log([float(u["K"]) for u in units])
    loglo = np.array([-np.inf if u["lo"] is None else math.log(u["lo"]) for u in units])
    loghi = np.array([np.inf if u["hi"] is None else math.log(u["hi"]) for u in units])
    mids = np.where(np.isinf(loglo), loghi, np.where(np.isinf(loghi), loglo, (loglo + loghi) / 2))

    def negll(p, a):
        return -_censored_loglik(logk, loglo, loghi, a, p[0], sigma_min + math.exp(p[1]))

    def profile(values):
        ll, xs = [], []
        for a in values:
            r = minimize(negll, [float(np.mean(mids - a * logk)), math.log(0.5)], args=(a,), method="Nelder-Mead",
                         options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 600})
            ll.append(-r.fun)
            xs.append(r.x)
        return np.asarray(ll), xs

    if grid is None:  # coarse over −1 … 3, then fine (0.01) where the interval can be
        coarse = np.arange(-1.0, 3.0 + 1e-9, 0.05)
        ll, _ = profile(coarse)
        near = coarse[2 * (ll.max() - ll) <= 3.841 + 2.0]
        grid = np.unique(np.concatenate([coarse, np.arange(max(-1.0, near.min() - 0.05),
                                                           min(3.0, near.max() + 0.05) + 1e-9, 0.01)]))
    grid = np.asarray(grid, float)
    prof, params = profile(grid)
    i = int(np.argmax(prof))
    inside = np.flatnonzero(2 * (prof[i] - prof) <= 3.841)
    lo_i, hi_i = int(inside.min()), int(inside.max())
    out |= {"a": float(grid[i]), "c": float(params[i][0]), "sigma": float(sigma_min + math.exp(params[i][1])),
            "loglik": float(prof[i]),
            "ci95": [None if lo_i == 0 else float(grid[lo_i]), None if hi_i == len(grid) - 1 else float(grid[hi_i])]}
    flat = np.flatnonzero(prof >= prof[i] - 1e-6)
    if len(flat) > 1:  # a plateau: every a there draws a line through all the intervals
        out["a"] = float(np.median(grid[flat]))
        out["plateau"] = [float(grid[flat.min()]), float(grid[flat.max()])]
    return out


def censored_text(fit: dict) -> str:
    """One line for :func:`fit_censored`'s result (the printed summary and the report say the same)."""
    if fit.get("a") is None:
        return f"tau_mem ~ K^a from every size: not fitted ({fit.get('reason', 'no units')})"
    lo, hi = fit["ci95"]
    ci = f"[{'<-1' if lo is None else f'{lo:.2f}'}, {'>3' if hi is None else f'{hi:.2f}'}]"
    return (f"tau_mem ~ K^a from every size (interval-censored likelihood over {fit['n_units']} models: "
            f"{fit['n_interval']} crossing between snapshots, {fit['n_left']} before the first, {fit['n_right']} "
            f"never): a = {fit['a']:.2f}, 95% profile interval {ci}")
