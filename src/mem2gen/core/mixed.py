"""A binomial mixed model for "does a setting's models exceed their nulls?", beside the t-test over models.

Each model r of a setting gives k_r of n_r samples in a class (its rate at its null's |S'|), and its null
gives k0_r of n0_r held-out items. The model (random intercept per model, on the model side):

    logit P(class | model r's sample)   = a + b + u_r,   u_r ~ N(0, σ²)
    logit P(class | model r's null item) = a

b > 0 is the excess (on the logit scale) of the setting's models over real data; σ is the between-model
spread the t-test also sees, but here each model's count is weighed by its binomial precision. The marginal
likelihood integrates u_r by adaptive Gauss-Hermite quadrature (20 nodes about each model's mode); the test is
the signed root of the likelihood ratio of b against b = 0, one-sided.

Assumptions, stated because the test depends on them: the logit of the models' rates is normal across
models (the tables' spreads near 0 are skewed: a normal on the logit scale is skewed on the rate scale, as
they are); the nulls of one setting share one rate (they are draws of the same real data); the likelihood
ratio is asymptotic in the number of models, so with 3-5 models it can be liberal: the coverage simulation
(scripts/coverage.py, docs/tables/coverage.csv) measures its type-I error and power beside the t-test's.

Written here rather than taken from statsmodels: statsmodels offers the binomial mixed model only as a
variational-Bayes fit (``BinomialBayesMixedGLM``), whose mean-field posterior ignores the coupling of b with
the random effects; on three models at 10%, 0%, 0% against nulls at 0.5% it put b at −0.92 ± 0.10.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import check

_NODES, _WEIGHTS = np.polynomial.hermite.hermgauss(20)


def _loglik(params, k, n, k0, n0, b_fixed=None) -> float:
    """The marginal log likelihood (binomial coefficients left out: they cancel in the ratio), each model's
    integral over its intercept by adaptive Gauss-Hermite quadrature: nodes centred on the integrand's mode
    and scaled by its curvature (a binomial of 1,000 samples is far narrower than σ, where plain nodes fail)."""
    from scipy.special import expit, log_expit, logsumexp

    a, b, log_s = params if b_fixed is None else (params[0], b_fixed, params[1])
    s2 = math.exp(2 * log_s)
    eta = a + b

    def h(u, k=k[:, None], n=n[:, None]):  # log binomial likelihood × normal density, up to −½ log(2π σ²)
        return k * log_expit(eta + u) + (n - k) * log_expit(-(eta + u)) - u ** 2 / (2 * s2)

    u = np.zeros_like(k)
    for _ in range(50):  # Newton for each model's mode (h is concave)
        p = expit(eta + u)
        grad, curv = k - n * p - u / s2, n * p * (1 - p) + 1 / s2
        step = grad / curv
        u = u + step
        if np.max(np.abs(step)) < 1e-10:
            break
    p = expit(eta + u)
    scale = 1 / np.sqrt(n * p * (1 - p) + 1 / s2)
    nodes = u[:, None] + math.sqrt(2) * scale[:, None] * _NODES[None, :]
    terms = h(nodes) + _NODES[None, :] ** 2 + np.log(_WEIGHTS)[None, :]
    per_model = logsumexp(terms, axis=1) + np.log(math.sqrt(2) * scale) - 0.5 * math.log(2 * math.pi * s2)
    null = k0 * log_expit(a) + (n0 - k0) * log_expit(-a)
    return float(per_model.sum() + null.sum())


def mixed_excess_test(model, null) -> dict:
    """One-sided test that a setting's models exceed their nulls, over models, by the binomial mixed model above.

    Parameters
    ----------
    model : sequence of (int, int)
        Per model: its count in the class and its number of samples (at the null's |S'|).
    null : sequence of (int, int)
        Per model: its null's count and number of held-out items.

    Returns
    -------
    dict
        ``b`` (the logit-scale excess), ``sigma`` (the between-model sd of the logit), ``p`` (one-sided,
        from the signed root of the likelihood ratio), ``odds_ratio`` = exp(b) and ``n_models``.
    """
    from scipy.optimize import minimize
    from scipy.stats import norm

    k, n = (np.asarray(v, float) for v in zip(*model))
    k0, n0 = (np.asarray(v, float) for v in zip(*null))
    check(len(k) >= 2 and len(k) == len(k0), "the mixed model needs two or more models, each with its null")
    check(np.all(n > 0) and np.all(n0 > 0), "every model and null needs samples")
    bounds_a, bounds_b, bounds_s = (-15.0, 15.0), (-15.0, 15.0), (math.log(1e-3), math.log(10.0))
    a0 = math.log((k0.sum() + 0.5) / (n0.sum() - k0.sum() + 0.5))
    b0 = math.log((k.sum() + 0.5) / (n.sum() - k.sum() + 0.5)) - a0
    full = minimize(lambda x: -_loglik(x, k, n, k0, n0), [a0, b0, math.log(0.5)], method="L-BFGS-B",
                    bounds=[bounds_a, bounds_b, bounds_s])
    zero = minimize(lambda x: -_loglik(x, k, n, k0, n0, b_fixed=0.0), [a0, math.log(0.5)], method="L-BFGS-B",
                    bounds=[bounds_a, bounds_s])
    lr = max(0.0, 2 * (zero.fun - full.fun))
    b = float(full.x[1])
    z = math.copysign(math.sqrt(lr), b)
    return {"b": b, "sigma": float(math.exp(full.x[2])), "odds_ratio": float(math.exp(b)), "p": float(norm.sf(z)),
            "n_models": int(len(k))}
