"""LPIPS nearest neighbours: embedding search (mem2gen) vs calling an LPIPS network on every pair.

The reference is the `lpips` package's own LPIPS module (AlexNet trunk, shipped linear weights);
both use the same backbone weights (random here: no pretrained AlexNet can be downloaded on this
machine; timing and agreement do not depend on the weights' values). The pairwise reference is timed
on a subset and extrapolated to the full shape; agreement is checked on that subset.

    python benchmarks/bench_lpips.py [--n-eval 2000 --n-ref 20000 --size 32]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from common import machine

from mem2gen import classify
from mem2gen.core.embed import LPIPSEmbedding, LPIPSSpace, _load_state, backbone_features, shipped_lin_weights
from mem2gen.core.neighbors import nearest


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-eval", type=int, default=2000)
    ap.add_argument("--n-ref", type=int, default=20000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--sub-eval", type=int, default=20)
    ap.add_argument("--sub-ref", type=int, default=300)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    from test_lpips import reference_lpips

    torch.manual_seed(0)
    feats = backbone_features("alex")
    ref_net = reference_lpips("alex", feats)
    space = LPIPSSpace(module=LPIPSEmbedding(net="alex", backbone_state={f"features.{k}": v for k, v in
                                                                          feats.state_dict().items()},
                                             lin_state=_load_state(shipped_lin_weights("alex"))), device="cpu")
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (500, 3, a.size, a.size), dtype=np.uint8)
    def make(n):
        idx = rng.integers(0, len(base), n)
        return np.clip(base[idx].astype(np.int16) + rng.integers(-20, 21, (n, 3, a.size, a.size)), 0,
                       255).astype(np.uint8)
    ev, refs = make(a.n_eval), make(a.n_ref)

    t = time.perf_counter()
    nearest(ev, refs, 2, space=space)
    ours = time.perf_counter() - t

    # pairwise reference on a subset: every pair through the lpips network
    se, sr = ev[: a.sub_eval], refs[: a.sub_ref]
    to = lambda x: torch.as_tensor(x).float() / 127.5 - 1  # noqa: E731
    t = time.perf_counter()
    d = np.empty((len(se), len(sr)))
    with torch.no_grad():
        for i in range(len(se)):
            for s in range(0, len(sr), 100):
                r = to(sr[s:s + 100])
                d[i, s:s + 100] = ref_net(to(se[i:i + 1]).expand(len(r), -1, -1, -1), r).flatten().numpy()
    pair_s = time.perf_counter() - t
    pair_full = pair_s * (a.n_eval * a.n_ref) / (len(se) * len(sr))
    sub = nearest(se, sr, 2, space=space)
    top1_same = bool((sub.indices[:, 0] == d.argmin(1)).all())
    rel = float(np.abs(sub.distances[:, 0] ** 2 - d.min(1)).max() / d.min(1).max())
    # labels: the rule on both sets of distances (S = first half of the subset refs, S' = second half)
    half = len(sr) // 2
    c = classify(se, sr[:half], sr[half:], distance="lpips", space=space, delta_s=0.175)
    ds = np.sort(d[:, :half], axis=1)
    from mem2gen import label

    ref_labels, _, _ = label(ds[:, 0], ds[:, 1], d[:, half:].min(1), delta_s=0.175)
    res = {"machine": machine(), "shape": f"{a.n_eval} eval x {a.n_ref} refs, {a.size}x{a.size}x3, AlexNet",
           "ours_s": ours, "pairwise_s_extrapolated": pair_full, "speedup": pair_full / ours,
           "subset": f"{len(se)} x {len(sr)}", "top1_identical": top1_same, "max_rel_diff_d1": rel,
           "labels_identical": bool((c.labels == ref_labels).all())}
    print(json.dumps(res, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
