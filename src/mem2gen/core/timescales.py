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
