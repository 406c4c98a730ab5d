"""Exact streaming k-nearest-neighbour search.

Why this is ours and not faiss/sklearn: the rule needs d(x̂, x1) right exactly where memorization
lives (d ≈ 0), and S' can be far larger than memory. The search therefore

1. streams the reference set in chunks (never an N×M matrix; peak memory is one
   ``batch × chunk`` score block plus the running candidates),
2. finds ``k + margin`` candidates per query with float32 matrix products
   (score = ‖r‖² − 2 q·r on mean-centred vectors, which shrinks cancellation error),
3. recomputes the candidates' distances exactly, as ‖q − r‖ of the float64 difference, and
4. certifies the result: a rounding-error bound for step 2 proves that no reference outside the
   candidates can be nearer than the k-th; the rare queries it cannot certify (e.g. more than
   ``k + margin`` near-ties) are searched again in float64.

Runs on CUDA when present, else on all CPU cores through torch's BLAS.

8-bit images (both sets uint8, on the CPU) take an exact integer path instead: int8 matrix products
with int32 accumulation give every squared distance exactly, so there is nothing to re-rank or certify
(:func:`_nearest_uint8`; 2.1× the float path and 2.0× faiss's exact index, BENCHMARKS.md).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .embed import PixelSpace, default_device
from .kernels import tf32

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Neighbors:
    """k nearest references of each query, ascending: Euclidean distances in the embedding."""

    distances: np.ndarray  # (n, k) float64
    indices: np.ndarray  # (n, k) int64
    refined: int = 0  # queries that the float32 pass could not certify and were searched in float64


@tf32(False)  # the float32 candidate pass and its certificate assume full fp32 products, whatever the caller set
def nearest(queries, references, k: int, *, space=None, exclude_self: bool = False, self_ids=None,
            chunk: int = 8192, batch: int = 4096, margin: int = 8, device=None, progress: bool = False,
            desc: str = "search", double: bool = False) -> Neighbors:
    """Exact k nearest neighbours of every query among ``references`` (array-likes, e.g. memmaps).

    ``exclude_self`` (queries and references are the same set) leaves each query out of its own
    neighbours (leave-one-out); ``self_ids`` gives that reference index per query explicitly.
    """
    space = space or PixelSpace()
    device = torch.device(device) if device else default_device()
    n, m = len(queries), len(references)
    if exclude_self and self_ids is None:
        self_ids = np.arange(n)
    k = min(k, m - (1 if self_ids is not None else 0))
    if k < 1 or n == 0:
        return Neighbors(np.zeros((n, max(k, 0))), np.zeros((n, max(k, 0)), dtype=np.int64))
    if integer_ok(space, queries, references, device) and not double:
        log.info("%s: %d queries x %d references, exact 8-bit integer search on %s", desc, n, m, device)
        return _nearest_uint8(queries, references, k, self_ids=self_ids, chunk=chunk, batch=min(batch, 2048),
                              margin=margin, progress=progress, desc=desc)
    kk = min(k + margin, m - (1 if self_ids is not None else 0))
    dtype = torch.float64 if double else torch.float32
    log.info("%s: %d queries x %d references, %s search on %s (%s)", desc, n, m, "float64" if double else
             "certified float32", device, type(space).__name__)

    # Scores ‖r‖² − 2 q·r as ONE matrix product: q' = [−2q, 1], r' = [r, ‖r‖²] on centred vectors.
    q = _embed_all(space, queries, dtype, batch).to(device)
    mu = q.mean(dim=0, keepdim=True)
    q -= mu
    qa = torch.cat([-2.0 * q, torch.ones(n, 1, dtype=dtype, device=device)], dim=1)
    best_v = torch.full((n, kk), float("inf"), dtype=dtype, device=device)
    best_i = torch.full((n, kk), -1, dtype=torch.int64, device=device)
    sid = torch.as_tensor(self_ids, device=device) if self_ids is not None else None
    rmax2 = 0.0
    scores = torch.empty((min(batch, n), chunk), dtype=dtype, device=device)  # reused: no page faults per block
    bar = tqdm(total=m, desc=desc, unit="ref", disable=not progress, leave=False, mininterval=1.0)
    for r0 in range(0, m, chunk):
        r1 = min(r0 + chunk, m)
        r = space.embed(np.asarray(references[r0:r1]), exact=double).to(device=device, dtype=dtype) - mu
        rn = (r * r).sum(dim=1, keepdim=True)
        rmax2 = max(rmax2, float(rn.max()))
        ra = torch.cat([r, rn], dim=1)
        take = min(kk, r1 - r0)
        for q0 in range(0, n, batch):
            q1 = min(q0 + batch, n)
            s = scores[: q1 - q0, : r1 - r0]
            torch.mm(qa[q0:q1], ra.T, out=s)
            if sid is not None:
                rows = torch.nonzero((sid[q0:q1] >= r0) & (sid[q0:q1] < r1)).flatten()
                s[rows, sid[q0:q1][rows] - r0] = float("inf")
            # Only rows with a score below their current worst candidate can change (late on, few can).
            bv, bi = best_v[q0:q1], best_i[q0:q1]
            rows = torch.nonzero(s.amin(dim=1) < bv.amax(dim=1)).flatten()
            if len(rows) == 0:
                continue
            full = len(rows) == q1 - q0
            v, i = _smallest(s if full else s[rows], take)
            v = torch.cat([bv if full else bv[rows], v], dim=1)
            i = torch.cat([bi if full else bi[rows], i + r0], dim=1)
            v, pos = torch.topk(v, kk, dim=1, largest=False, sorted=False)
            i = torch.gather(i, 1, pos)
            if full:
                bv.copy_(v), bi.copy_(i)
            else:
                bv[rows], bi[rows] = v, i
        bar.update(r1 - r0)
    bar.close()

    cand = best_i.cpu().numpy()
    dist, idx = _rerank(space, queries, references, cand, k, batch)
    if double:
        return Neighbors(dist, idx)

    # Certification (step 4): |score error| <= gamma * (|r|^2 + 2 |q||r|) for a length-D float32 dot product.
    gamma = (q.shape[1] + 8) * 2.0 ** -24
    qn = q.double().norm(dim=1).cpu().numpy()
    bound = gamma * (rmax2 + 2.0 * qn * np.sqrt(rmax2))
    worst_kept = best_v.max(dim=1).values.double().cpu().numpy()  # the (k+margin)-th float32 score
    exact_kth = dist[:, -1] ** 2 - qn ** 2  # the same score, exact, for the k-th neighbour
    unsure = np.flatnonzero(np.isfinite(worst_kept) & (exact_kth > worst_kept - bound) & (kk < m))
    if len(unsure):
        sub = nearest(_Rows(queries, unsure), references, k, space=space, chunk=chunk, batch=batch,
                      margin=margin, device=device, desc=desc + " (float64)", double=True,
                      self_ids=None if self_ids is None else np.asarray(self_ids)[unsure])
        dist[unsure], idx[unsure] = sub.distances, sub.indices
    log.info("%s: %d of %d queries not certified by float32, searched again in float64", desc, len(unsure), n)
    return Neighbors(dist, idx, refined=len(unsure))


# --- 8-bit pixels: exact integer search ---------------------------------------------------------------

def integer_ok(space, queries, references, device) -> bool:
    """Whether the exact integer path applies: plain pixel distance, both sets uint8, on the CPU (int8
    matrix products with int32 accumulation; squared distances up to D·255² must fit in int32)."""
    return (type(space) is PixelSpace and getattr(queries, "dtype", None) == np.uint8
            and getattr(references, "dtype", None) == np.uint8 and torch.device(device).type == "cpu"
            and int(np.prod(queries.shape[1:])) * 255 ** 2 < 2 ** 31 and hasattr(torch, "_int_mm"))


def _int8(block) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 rows shifted to int8 (x − 128: distances unchanged) and their squared norms (int64)."""
    u = np.asarray(block).reshape(len(block), -1)
    x = torch.from_numpy((u ^ np.uint8(0x80)).view(np.int8))  # x − 128 in one pass: flip the top bit
    return x, (x.to(torch.int16) ** 2).sum(dim=1, dtype=torch.int64)  # 128² fits an int16


def _nearest_uint8(queries, references, k: int, *, self_ids, chunk: int, batch: int, margin: int, progress: bool,
                   desc: str) -> Neighbors:
    """Exact k nearest neighbours of uint8 images by integer arithmetic: the score ‖r‖² − 2 q·r of every
    pair is an exact int32 (int8 products, int32 sums), so the candidates need no re-rank and no
    certificate. Ties are broken by the lower index, as a stable sort of exact distances would. A query
    whose k-th score equals its worst kept candidate's (more than k + margin ties) is redone in full."""
    n, m = len(queries), len(references)
    kk = min(k + margin, m)
    q, qn = _int8(queries)
    best_v = torch.full((n, kk), torch.iinfo(torch.int32).max, dtype=torch.int32)
    best_i = torch.full((n, kk), -1, dtype=torch.int64)
    sid = torch.as_tensor(self_ids) if self_ids is not None else None
    bar = tqdm(total=m, desc=desc, unit="ref", disable=not progress, leave=False, mininterval=1.0)
    for r0 in range(0, m, chunk):
        r1 = min(r0 + chunk, m)
        r, rn = _int8(references[r0:r1])
        rt, rn32 = r.T.contiguous(), rn.to(torch.int32)
        take = min(kk, r1 - r0)
        for q0 in range(0, n, batch):
            q1 = min(q0 + batch, n)
            s = torch._int_mm(q[q0:q1], rt) if q1 - q0 > 16 else (q[q0:q1].to(torch.int32) @ rt.to(torch.int32))
            s.mul_(-2).add_(rn32[None, :])
            if sid is not None:
                rows = torch.nonzero((sid[q0:q1] >= r0) & (sid[q0:q1] < r1)).flatten()
                s[rows, sid[q0:q1][rows] - r0] = torch.iinfo(torch.int32).max
            v, i = torch.topk(s, take, dim=1, largest=False, sorted=False)
            v = torch.cat([best_v[q0:q1], v], dim=1)
            i = torch.cat([best_i[q0:q1], i + r0], dim=1)
            v, pos = torch.topk(v, kk, dim=1, largest=False, sorted=False)
            best_v[q0:q1], best_i[q0:q1] = v, torch.gather(i, 1, pos)
        bar.update(r1 - r0)
    bar.close()
    v, i = best_v.numpy().astype(np.int64), best_i.numpy()
    v[i < 0] = np.iinfo(np.int64).max
    order = np.lexsort((i, v), axis=1)  # exact scores, ties by index
    v, i = np.take_along_axis(v, order, 1), np.take_along_axis(i, order, 1)
    unsure = np.flatnonzero((v[:, k - 1] == v[:, -1]) & (kk < m - (1 if sid is not None else 0)))
    for row in unsure:  # more than kk ties at the k-th distance: every reference of this query, exactly
        ref_all = [_int8(references[r0:min(r0 + chunk, m)]) for r0 in range(0, m, chunk)]
        sc = torch.cat([rn - 2 * (rr.to(torch.int64) @ q[row].to(torch.int64)) for rr, rn in ref_all]).numpy()
        if sid is not None and 0 <= int(sid[row]) < m:
            sc[int(sid[row])] = np.iinfo(np.int64).max
        best = np.lexsort((np.arange(m), sc))[:kk]
        v[row], i[row] = sc[best], best
    d2 = v[:, :k] + qn.numpy()[:, None]
    return Neighbors(np.sqrt(d2.astype(np.float64)) / 127.5, i[:, :k].astype(np.int64), refined=len(unsure))


def _smallest(s: torch.Tensor, k: int, group: int = 64):
    """The k smallest entries per row (unsorted): minima of column groups first, then the k groups
    holding the k smallest minima (they hold the k smallest entries), then a top-k of those alone.
    About 1.5x faster than ``torch.topk`` on a whole 4096 x 8192 block on this 2-core CPU."""
    rows, cols = s.shape
    if cols % group or cols // group <= k or s.device.type != "cpu":
        return torch.topk(s, k, dim=1, largest=False, sorted=False)
    blocks = s.view(rows, cols // group, group) if s.is_contiguous() else s.reshape(rows, cols // group, group)
    _, g = torch.topk(blocks.amin(dim=2), k, dim=1, largest=False, sorted=False)
    cand = torch.gather(blocks, 1, g.unsqueeze(2).expand(rows, k, group)).reshape(rows, k * group)
    v, j = torch.topk(cand, k, dim=1, largest=False, sorted=False)
    return v, torch.gather(g, 1, j // group) * group + j % group


class _Rows:
    """A row subset of an array-like, sliced lazily."""

    def __init__(self, base, rows):
        self.base, self.rows = base, np.asarray(rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, sl):
        return np.asarray(self.base[np.sort(self.rows[sl])])[np.argsort(np.argsort(self.rows[sl]))]


def _embed_all(space, x, dtype, batch) -> torch.Tensor:
    exact = dtype == torch.float64
    return torch.cat([space.embed(np.asarray(x[s:s + batch]), exact=exact) for s in range(0, len(x), batch)]).to(dtype)


def _rerank(space, queries, references, cand: np.ndarray, k: int, batch: int):
    """Exact distances ‖q − r‖ (float64 differences) of the candidates; the k nearest, ties by index.

    Works through the queries in blocks sized so that the float64 difference tensor stays near
    64 MiB; memory does not grow with the number of queries or references.
    """
    n, kk = cand.shape
    dist = np.empty((n, k))
    idx = np.empty((n, k), dtype=np.int64)
    dim = space.embed(np.asarray(queries[:1]), exact=True).shape[1]
    step = max(1, min(batch, (64 << 20) // (8 * kk * dim)))
    for q0 in range(0, n, step):
        q1 = min(q0 + step, n)
        c = cand[q0:q1]
        uniq = np.unique(c[c >= 0])
        ref_rows = space.embed(np.asarray(references[uniq]), exact=True)
        pos = torch.from_numpy(np.searchsorted(uniq, np.maximum(c, 0)))
        qx = space.embed(np.asarray(queries[q0:q1]), exact=True)
        d = (qx[:, None, :] - ref_rows[pos]).norm(dim=2).numpy()
        d[c < 0] = np.inf
        order = np.lexsort((c, d), axis=1)[:, :k]
        dist[q0:q1] = np.take_along_axis(d, order, axis=1)
        idx[q0:q1] = np.take_along_axis(c, order, axis=1)
    return dist, idx
