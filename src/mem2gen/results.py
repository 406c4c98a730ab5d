"""The rows of results.csv: one per classified point, flattened from its summary.json and, where they
exist, its null.json, manifold.json and quality.json (:func:`rows`, what ``Run.results()`` returns)."""
from __future__ import annotations

from . import layout
from .files import read_json
from .stats import ALPHA, LABELS, exceeds, mark_significant


def rows(points) -> list[dict]:
    """One record per classified point (K, sizes, counts, fractions, bootstrap mean/std/95%): plain
    dicts, so ``pandas.DataFrame(rows)`` takes them as they are. ``significant_*`` is corrected for
    the number of sizes (Holm, family-wise α)."""
    out = [point_row(p) for p in points if p.state == "classified"]
    for name in ("memorized", "spurious"):
        if out and all(f"p_{name}" in r for r in out):
            mark_significant(out, name)
    return out


def point_row(point) -> dict:
    """One point's record; its ``significant_*`` judge this point alone (p < α), where :func:`rows`
    corrects them for the run's number of sizes."""
    s = point.summary
    row = {"K": point.k, "n_eval": s["n_eval"], "n_synthetic": s["n_synthetic"]}
    for name in LABELS:
        b = s["bootstrap"][name]
        row |= {f"count_{name}": s["counts"][name], f"frac_{name}": s["fractions"][name],
                f"mean_{name}": b["mean"], f"std_{name}": b["std"], f"lo95_{name}": b["ci95"][0],
                f"hi95_{name}": b["ci95"][1]}
    if (point.path / layout.NULL).exists():  # the rule on held-out real data (mem2gen.calibrate)
        n = read_json(point.path / layout.NULL)
        if n["fractions"] is None:  # no held-out data at this K (K = N): nothing to compare with
            n = {"fractions": {}, "bootstrap": {}, "excess": {}, "n_synthetic": 0}
        for name in ("memorized", "spurious"):
            e = n["excess"].get(name, {"excess": None, "ci95": [None, None]})
            ci = n["bootstrap"].get(name, {"ci95": [None, None]})["ci95"]
            p = None
            if n.get("counts") and n.get("model_counts"):  # the exact test, from the counts (any version's file)
                mc, nc = n["model_counts"], n["counts"]
                p = exceeds(mc[name], sum(mc.values()), nc[name], sum(nc.values()))
            row |= {f"null_{name}": n["fractions"].get(name), f"null_lo95_{name}": ci[0],
                    f"null_hi95_{name}": ci[1], f"excess_{name}": e["excess"],
                    f"excess_lo95_{name}": e["ci95"][0], f"excess_hi95_{name}": e["ci95"][1],
                    f"p_{name}": p, f"significant_{name}": int(p is not None and p < ALPHA),
                    # the counts the test compared (the model's at the null's |S'|), for pooled tests
                    f"null_count_{name}": n["counts"].get(name) if n.get("counts") else None,
                    f"model_count_{name}_at_null": n["model_counts"].get(name) if n.get("model_counts") else None}
        row["null_n"] = sum(n["counts"].values()) if n.get("counts") else None
        row["model_n_at_null"] = sum(n["model_counts"].values()) if n.get("model_counts") else None
        row["null_n_synthetic"] = n["n_synthetic"]
    if (point.path / layout.MANIFOLD).exists():  # samples unlike any real data (mem2gen.calibrate)
        m = read_json(point.path / layout.MANIFOLD)
        row |= {"off_manifold": m["all"]["fraction"], "off_manifold_lo95": m["all"]["ci95"][0],
                "off_manifold_hi95": m["all"]["ci95"][1], "generalized_off_manifold": m["generalized"]["fraction"]}
    if (point.path / layout.QUALITY).exists():  # FD / KID against real data (mem2gen.quality)
        q = read_json(point.path / layout.QUALITY)
        row |= {"quality_fd": q["fd"], "quality_kid": q["kid"], "quality_real_fd": q["real_fd"]}
    return row
