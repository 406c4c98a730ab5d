"""The attractor landscape of a diffusion model (paper §2, Hypothesis 2.1).

Every function takes any ε-model ``model(x_t, t)`` (a trained U-Net or MLP, a loaded diffusers model,
or :class:`mem2gen.models.diffusion.OptimalDenoiser`) and a :class:`mem2gen.models.diffusion.Schedule`, works on
batches, and runs on the model's device.

- **Energy** of the model at step t: E_t(x) = −log p_t(x) up to a constant, whose gradient is
  ∇E_t = ε_θ(x, t)/√(1 − ᾱ_t) (the score is its negative). :func:`relative_energy` integrates it
  along a segment (Gauss-Legendre), :func:`energy_profile` along a path.
- **Curvature**: ∇²E_t = ∂ε_θ/∂x / √(1 − ᾱ_t); :func:`hessian_eigs` finds its extreme eigenvalues
  by Lanczos on Jacobian-vector products, never forming the d × d matrix.
- **Recovery (critical) times** live in :mod:`mem2gen.analyses.recovery`.
- **Attractor census**: where the dynamics end (:func:`follow`), merged into distinct attractors
  (:func:`census`), counted as the number of samples grows.
- **Mixture test** (Hypothesis 2.1): is a sample a (convex) combination of a few training items?
  (:func:`mixture_fit`).

For the optimal denoiser the energy and its Hessian are known exactly (a log-sum-exp of Gaussians);
the tests check every tool against them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.neighbors import nearest
from ..errors import check
from ..io.data import to_float
from ..models.diffusion import Schedule, SplitOnOOM


def _device(model) -> torch.device:
    p = next(iter(list(model.parameters()) + list(model.buffers())), None)
    return p.device if p is not None else torch.device("cpu")


def _rows(x, model) -> torch.Tensor:
    x = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x))  # a copy: memmaps are read-only
    if x.dtype == torch.uint8:
        x = x.float() / 127.5 - 1
    x = x.to(_device(model), torch.float64 if x.dtype == torch.float64 else torch.float32)
    shape = tuple(getattr(model, "sample_shape", x.shape[1:]))
    return x.reshape(len(x), *shape)


def _flat_norm(a: torch.Tensor) -> torch.Tensor:
    return a.reshape(len(a), -1).norm(dim=1)


def _steps(t, n: int, device) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=torch.long, device=device)
    return t.expand(n).clone() if t.ndim == 0 else t


# --- energy ------------------------------------------------------------------------------------------

@torch.no_grad()
def energy_gradient(model, x, t, *, schedule: Schedule = Schedule()) -> torch.Tensor:
    """∇E_t(x) = ε_θ(x, t)/√(1 − ᾱ_t) for each row with E_t = −log p_t."""
    x = _rows(x, model)
    tt = _steps(t, len(x), x.device)
    ab = schedule.alphas_cumprod.to(x.device)[tt].to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
    return model(x, tt) / (1 - ab).sqrt()


def _gauss_legendre(nodes: int, segments: int):
    """Nodes and weights of a composite Gauss-Legendre rule on [0, 1]."""
    s, w = np.polynomial.legendre.leggauss(nodes)
    s, w = (s + 1) / 2, w / 2
    edges = np.arange(segments) / segments
    return ((edges[:, None] + s[None] / segments).ravel(), np.tile(w / segments, segments))


def relative_energy(model, x, y, t: int, *, schedule: Schedule = Schedule(), nodes: int = 8,
                    segments: int | None = None, batch: int = 4096) -> np.ndarray:
    """E_t(y) − E_t(x) for each pair of rows: the line integral of ∇E_t along the segment from x to y,
    ∫₀¹ ∇E_t(x + s(y − x))·(y − x) ds, by composite Gauss-Legendre quadrature (``segments`` × ``nodes``
    evaluations per pair). Positive: y lies higher than x.

    p_t is smooth on the scale of its noise, √(1 − ᾱ_t), so by default the segment is cut into
    pieces of half that length (at least 4): on the optimal denoiser, whose energy is exact, this
    agrees to 1e-3 relative or better from t = 50 on (tests); below that its kinks between basins
    (width (1 − ᾱ_t)/‖y_i − y_j‖) need more ``segments``."""
    x, y = _rows(x, model), _rows(y, model)
    check(x.shape == y.shape, f"x and y differ in shape: {tuple(x.shape)} and {tuple(y.shape)}")
    d = y - x
    if segments is None:
        sigma = float((1 - schedule.alphas_cumprod[int(t)]).sqrt())
        segments = max(4, int(np.ceil(2 * float(_flat_norm(d).max()) / sigma)))
    s, w = _gauss_legendre(nodes, segments)
    total = torch.zeros(len(x), dtype=torch.float64, device=x.device)
    pts = (x[None] + torch.as_tensor(s, dtype=x.dtype, device=x.device).view(-1, 1, *[1] * (x.ndim - 1)) * d[None])
    pts = pts.reshape(-1, *x.shape[1:])
    grads = torch.cat([energy_gradient(model, pts[i:i + batch], t, schedule=schedule)
                       for i in range(0, len(pts), batch)])
    dots = (grads.reshape(len(s), len(x), -1) * d.reshape(1, len(x), -1)).sum(-1).double()
    total += (torch.as_tensor(w, dtype=torch.float64, device=x.device)[:, None] * dots).sum(0)
    return total.cpu().numpy()


def energy_profile(model, x, y, t: int, *, schedule: Schedule = Schedule(), points: int = 33, nodes: int = 8,
                   batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """E_t along the segment from x to y: (s, E_t(x + s(y − x)) − E_t(x)) at ``points`` evenly spaced s,
    each piece between neighbouring points integrated as :func:`relative_energy` does."""
    x, y = _rows(x, model), _rows(y, model)
    s = np.linspace(0, 1, points)
    out = np.zeros((len(x), points))
    for j in range(1, points):
        a = x + float(s[j - 1]) * (y - x)
        b = x + float(s[j]) * (y - x)
        out[:, j] = out[:, j - 1] + relative_energy(model, a, b, t, schedule=schedule, nodes=nodes, batch=batch)
    return s, out


def barrier(profile: np.ndarray) -> np.ndarray:
    """The energy barrier of a profile that starts at a sample and ends at a training item: the
    highest point above the start (0 when the path runs downhill all the way)."""
    return np.maximum(profile.max(axis=1), 0.0)


# --- curvature -----------------------------------------------------------------------------------------

@dataclass
class Eigs:
    values: np.ndarray  # (k,) ascending
    residuals: np.ndarray  # (k,) ‖Hv − λv‖ of the Ritz pairs
    matvecs: int  # Hessian-vector products used


def hessian_eigs(model, x, t: int, *, k: int = 3, which: str = "smallest", schedule: Schedule = Schedule(),
                 iters: int | None = None, symmetrize: bool = True, seed: int = 0) -> Eigs:
    """The ``k`` smallest (or largest) eigenvalues of ∇²E_t at one sample x, E_t = −log p_t.

    ∇²E_t = (∂ε_θ/∂x)/√(1 − ᾱ_t). Lanczos with full reorthogonalisation over Hessian-vector
    products (``torch.func.jvp``; with ``symmetrize`` the operator is ½(J + Jᵀ), one JVP and one VJP
    per product, since a learned ε need not have a symmetric Jacobian), ``iters`` steps
    (default min(d, 30 + 10k)). Never forms the d × d matrix. Written here rather than with
    scipy's ARPACK so that it runs on the model's device and stops at a fixed, small budget.
    """
    check(which in ("smallest", "largest"), f"which={which!r}: use smallest or largest")
    x = _rows(x, model)
    check(len(x) == 1, "hessian_eigs takes one sample; loop over samples")
    shape = x.shape
    d = x[0].numel()
    m = min(d, iters or 30 + 10 * k)
    check(1 <= k <= m, f"k={k} must lie in [1, {m}]")
    tt = torch.full((1,), int(t), dtype=torch.long, device=x.device)
    scale = float(1 / (1 - schedule.alphas_cumprod[int(t)]).sqrt())

    def eps(z):
        return model(z, tt)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        v = v.reshape(shape).to(x.dtype)
        # the fused attention kernels have no forward-mode derivative; the math one has (same values)
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            _, jv = torch.func.jvp(eps, (x,), (v,))
            if symmetrize:
                _, pull = torch.func.vjp(eps, x)
                jv = 0.5 * (jv + pull(v)[0])
        return (scale * jv).reshape(-1).double().detach()

    g = torch.Generator().manual_seed(seed)
    Q, alpha, beta = [], [], []  # beta[j] couples Q[j] and Q[j+1]; 0 where the Krylov space was exhausted
    q = torch.randn(d, generator=g, dtype=torch.float64).to(x.device)
    for j in range(m):
        if j > 0 and beta[-1] == 0.0:  # invariant subspace found: continue from a fresh direction
            q = torch.randn(d, generator=g, dtype=torch.float64).to(x.device)
            basis = torch.stack(Q)
            q = q - basis.T @ (basis @ q)
        Q.append(q / q.norm())
        w = hvp(Q[j])
        alpha.append(float(w @ Q[j]))
        basis = torch.stack(Q)
        w = w - basis.T @ (basis @ w)  # full reorthogonalisation (twice is enough)
        w = w - basis.T @ (basis @ w)
        b = float(w.norm())
        if j == m - 1:
            break
        small = b < 1e-9 * max(1.0, max(abs(a) for a in alpha))
        beta.append(0.0 if small else b)
        q = w
    T = np.diag(alpha) + np.diag(beta, 1) + np.diag(beta, -1)
    vals, vecs = np.linalg.eigh(T)
    pick = np.arange(k) if which == "smallest" else np.arange(len(vals))[::-1][:k]
    residuals = np.abs(b * vecs[-1, pick])  # ‖H Qs − θ Qs‖ for each Ritz pair
    order = np.argsort(vals[pick])
    matvecs = len(alpha) * (2 if symmetrize else 1)
    return Eigs(vals[pick][order], residuals[order], matvecs)


# --- attractors -------------------------------------------------------------------------------------------

@torch.no_grad()
def follow(model, x, *, t: int = 50, iters: int = 100, tol: float = 1e-5, schedule: Schedule = Schedule(),
           batch: int = 8192) -> torch.Tensor:
    """Where each sample's dynamics end: iterate the denoiser at noise level t without injecting noise,
    x ← x̂0(√ᾱ_t x, t), until no row moves more than ``tol``. For the optimal denoiser this is the
    DenseAM update with a per-pattern bias (paper App. C); its fixed points are the attractors."""
    net = SplitOnOOM(model)
    x = _rows(x, model)
    ab = schedule.alphas_cumprod[int(t)].float().to(x.device)
    out = []
    for i in range(0, len(x), batch):
        h = x[i:i + batch]
        tt = torch.full((len(h),), int(t), dtype=torch.long, device=x.device)
        for _ in range(iters):
            xt = ab.sqrt() * h
            new = ((xt - (1 - ab).sqrt() * net(xt, tt)) / ab.sqrt()).clamp(-1, 1)
            moved = float(_flat_norm(new - h).max())
            h = new
            if moved <= tol:
                break
        out.append(h)
    return torch.cat(out)


@dataclass
class Census:
    component: np.ndarray  # (m,) which attractor each end point belongs to (0 = the most occupied)
    occupancy: np.ndarray  # (A,) end points per attractor, descending
    training_item: np.ndarray  # (A,) the training item an attractor sits on (within δ), −1 if none

    @property
    def n_attractors(self) -> int:
        return len(self.occupancy)

    @property
    def n_training(self) -> int:
        return int((self.training_item >= 0).sum())


def census(ends, *, delta: float, train=None) -> Census:
    """Distinct attractors among end points: the connected components of the graph joining end points
    closer than ``delta`` (single linkage), with how many end points each holds and, given ``train``,
    which training item (if any) lies within ``delta`` of the component's most central member."""
    e = torch.as_tensor(np.asarray(ends.cpu() if isinstance(ends, torch.Tensor) else ends)).double()
    e = e.reshape(len(e), -1)
    m = len(e)
    parent = np.arange(m)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for s in range(0, m, 2048):
        d = torch.cdist(e[s:s + 2048], e)
        rows, cols = torch.nonzero(d <= delta, as_tuple=True)
        for i, j in zip((rows + s).tolist(), cols.tolist()):
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(m)])
    uniq, inv, counts = np.unique(roots, return_inverse=True, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    component = rank[inv]
    occupancy = counts[order]
    items = np.full(len(occupancy), -1)
    if train is not None:
        y = torch.as_tensor(np.asarray(train)).double().reshape(len(train), -1)
        if y.abs().max() > 1.5:  # uint8 pixels
            y = y / 127.5 - 1
        for a in range(len(occupancy)):
            members = e[component == a]
            centre = members[torch.cdist(members, members).sum(1).argmin()]
            dist = torch.cdist(centre[None], y)[0]
            j = int(dist.argmin())
            items[a] = j if float(dist[j]) <= delta else -1
    return Census(component, occupancy, items)


# --- mixtures (Hypothesis 2.1) -----------------------------------------------------------------------------

@dataclass
class Mixture:
    weights: np.ndarray  # (n, m) non-negative weights of the m nearest training items
    parents: np.ndarray  # (n, m) their indices in S
    residual: np.ndarray  # (n,) ‖x − Σ w y‖
    relative: np.ndarray  # (n,) residual / d(x, x1): below 1, the mixture explains x better than its nearest item


def mixture_fit(x, train, *, m: int = 3, convex: bool = True, device=None) -> Mixture:
    """The best non-negative (``convex``: also summing to one) combination of each sample's ``m``
    nearest training items (l2), by non-negative least squares (scipy's NNLS; the sum-to-one
    constraint as a heavily weighted extra row)."""
    from scipy.optimize import nnls

    check(m >= 1, "m must be at least 1")
    xs = to_float(np.asarray(x), np.float64)
    ys = to_float(np.asarray(train), np.float64)
    nb = nearest(np.asarray(x), np.asarray(train), min(m, len(ys)), device=device)
    n, mm = nb.indices.shape
    weights, residual = np.zeros((n, mm)), np.zeros(n)
    big = 1e3 * (1 + np.abs(ys).max())
    for i in range(n):
        A = ys[nb.indices[i]].T
        b = xs[i]
        if convex:
            A = np.vstack([A, big * np.ones((1, mm))])
            b = np.concatenate([b, [big]])
        w, _ = nnls(A, b)
        weights[i] = w
        residual[i] = np.linalg.norm(xs[i] - ys[nb.indices[i]].T @ w)
    d1 = np.maximum(nb.distances[:, 0], 1e-12)
    return Mixture(weights, nb.indices, residual, residual / d1)
