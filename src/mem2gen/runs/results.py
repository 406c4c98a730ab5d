"""The rows of results.csv: one per classified K (:func:`rows`, what ``Run.results()`` returns), and
one per classified point (:func:`point_row`, every replicate: points.csv).

A point's row is flattened from its summary.json and, where they exist, its null.json, manifold.json and
quality.json. With one model per K the K's row is that point's row, and its tests judge that one model
(``inference`` = "one model": the per-sample test; between-model variance is not measured). With
replicate models the K's row is model-level (``inference`` = "models"): fractions are means over the
models, ``std_*`` their between-model sd, ``lo95_*``/``hi95_*`` the t-interval
over the models, and ``p_*`` the t-test of the models' excesses over their own nulls
(:func:`mem2gen.core.stats.model_interval`, :func:`mem2gen.core.stats.model_test`). ``significant_*`` is
Holm-corrected over the table's K either way. ``frac_<class>_at_null`` is the model's fraction at the
null's |S_eval| and |S'| (equal to ``frac_<class>`` unless the held-out data could not fill |S'|): the
number the null is compared with.
"""
from __future__ import annotations

import csv

import numpy as np

from ..core.mixed import mixed_excess_test
from ..core.null import TESTED, counts_of, excess, share
from ..core.stats import ALPHA, LABELS, exceeds, mark_significant, model_interval, model_test
from ..errors import check
from ..io import layout
from ..io.files import read_json
from .schema import with_old_names


def rows(points) -> list[dict]:
    """One record per classified K: plain dicts, so ``pandas.DataFrame(rows)`` takes them as they are."""
    by_k: dict = {}
    for p in points:
        if p.state == "classified":
            by_k.setdefault(p.k, []).append(point_row(p))
    out = [group[0] | {"n_replicates": 1, "inference": "one model"} if len(group) == 1 else model_row(group)
           for _, group in sorted(by_k.items())]
    for r in out:
        r.pop("replicate", None)
    for name in TESTED:
        if out and all(f"p_{name}" in r for r in out):
            mark_significant(out, name)
    return out


def model_row(group: list[dict]) -> dict:
    """The model-level record of one K from its replicates' point rows."""
    first = group[0]
    row = {"K": first["K"], "n_replicates": len(group), "inference": "models", "n_eval": first["n_eval"],
           "n_synthetic": first["n_synthetic"], "synthetic_per_K": first["synthetic_per_K"]}
    for name in LABELS:
        iv = model_interval([r[f"frac_{name}"] for r in group])
        row |= {f"count_{name}": sum(r[f"count_{name}"] for r in group), f"frac_{name}": iv["mean"],
                f"std_{name}": iv["sd"], f"lo95_{name}": iv["ci95"][0], f"hi95_{name}": iv["ci95"][1]}
    if all(r.get("frac_spurious_nonmem") is not None for r in group):
        iv = model_interval([r["frac_spurious_nonmem"] for r in group])
        row |= {"frac_spurious_nonmem": iv["mean"], "std_spurious_nonmem": iv["sd"],
                "lo95_spurious_nonmem": iv["ci95"][0], "hi95_spurious_nonmem": iv["ci95"][1]}
    if all(r.get("null_spurious") is not None for r in group):
        for name in TESTED:
            nulls = [r.get(f"null_{name}") for r in group]
            at = [r.get(f"frac_{name}_at_null") for r in group]
            if None in nulls or None in at:  # a model or its null without a non-memorized sample
                row |= {f"null_{name}": None, f"excess_{name}": None, f"p_{name}": None}
                continue
            exc = [a - b for a, b in zip(at, nulls)]  # each model against its own null, at equal |S'|
            n_iv, e_iv = model_interval(nulls), model_interval(exc, fraction=False)
            row |= {f"null_{name}": n_iv["mean"], f"null_lo95_{name}": n_iv["ci95"][0],
                    f"null_hi95_{name}": n_iv["ci95"][1], f"frac_{name}_at_null": float(np.mean(at)),
                    f"excess_{name}": e_iv["mean"], f"excess_lo95_{name}": e_iv["ci95"][0],
                    f"excess_hi95_{name}": e_iv["ci95"][1], f"excess_sd_{name}": e_iv["sd"],
                    f"p_{name}": model_test(exc), f"significant_{name}": 0,
                    f"null_count_{name}": sum(r[f"null_count_{name}"] for r in group),
                    f"model_count_{name}_at_null": sum(r[f"model_count_{name}_at_null"] for r in group)}
            if name == "spurious_nonmem":  # the denominators of the conditional form
                row |= {f"null_n_{name}": sum(r[f"null_n_{name}"] for r in group),
                        f"model_n_{name}_at_null": sum(r[f"model_n_{name}_at_null"] for r in group)}
            row |= mixed_columns(group, name)
        row |= {"null_n": sum(r["null_n"] for r in group), "model_n_at_null": sum(r["model_n_at_null"] for r in group),
                "null_n_synthetic": min(r["null_n_synthetic"] for r in group)}
    for key in ("off_manifold", "quality_fd", "quality_kid", "quality_real_fd"):
        vals = [r.get(key) for r in group]
        if all(v is not None for v in vals):
            row[key] = float(np.mean(vals))
    if "off_manifold" in row:  # over the models that made generalized samples (None: no model did)
        vals = [r["generalized_off_manifold"] for r in group if r.get("generalized_off_manifold") is not None]
        row["generalized_off_manifold"] = float(np.mean(vals)) if vals else None
    if "off_manifold" in row:
        iv = model_interval([r["off_manifold"] for r in group])
        row |= {"off_manifold_lo95": iv["ci95"][0], "off_manifold_hi95": iv["ci95"][1]}
    return row


def mixed_columns(group: list[dict], name: str) -> dict:
    """``p_mixed_<name>`` and ``odds_mixed_<name>``: the binomial mixed model's one-sided test over the models
    (:func:`mem2gen.core.mixed.mixed_excess_test`), beside the t-test; None where a count is missing."""
    n_model = "model_n_at_null" if name != "spurious_nonmem" else f"model_n_{name}_at_null"
    n_null = "null_n" if name != "spurious_nonmem" else f"null_n_{name}"
    try:
        model = [(int(r[f"model_count_{name}_at_null"]), int(r[n_model])) for r in group]
        null = [(int(r[f"null_count_{name}"]), int(r[n_null])) for r in group]
    except (KeyError, TypeError):
        return {}
    if any(n == 0 for _, n in model + null):
        return {f"p_mixed_{name}": None, f"odds_mixed_{name}": None}
    m = mixed_excess_test(model, null)
    return {f"p_mixed_{name}": m["p"], f"odds_mixed_{name}": m["odds_ratio"]}


def point_row(point) -> dict:
    """One point's record; its ``significant_*`` judge this point alone (p < α), where :func:`rows`
    corrects them for the run's number of sizes."""
    s = point.summary
    row = {"K": point.k, "replicate": point.replicate, "n_eval": s["n_eval"], "n_synthetic": s["n_synthetic"],
           "synthetic_per_K": s["n_synthetic"] / point.k, "model_digest": s.get("made_from", {}).get("model")}
    for name in LABELS:
        b = s["bootstrap"][name]
        row |= {f"count_{name}": s["counts"][name], f"frac_{name}": s["fractions"][name],
                f"mean_{name}": b["mean"], f"std_{name}": b["std"], f"lo95_{name}": b["ci95"][0],
                f"hi95_{name}": b["ci95"][1]}
    row["frac_spurious_nonmem"] = share(s["counts"], "spurious_nonmem")  # eq 5 among non-memorized samples
    if (point.path / layout.NULL).exists():  # the rule on held-out real data (mem2gen.core.null)
        n = read_json(point.path / layout.NULL)
        if n["fractions"] is None:  # no held-out data at this K (K = N): nothing to compare with
            n = {"fractions": {}, "bootstrap": {}, "excess": {}, "n_synthetic": 0}
        for name in TESTED:
            mc, nc = n.get("model_counts"), n.get("counts")
            if name == "spurious_nonmem":  # the conditional form, from the counts (any version's null.json)
                if not (mc and nc):
                    continue
                e = n["excess"].get(name) or excess(mc, nc, name=name, iterations=point.config.bootstrap_iterations,
                                                    seed=point.seed("bootstrap"))
                (k_m, n_m), (k_n, n_n) = counts_of(mc, name), counts_of(nc, name)
                row |= {f"null_{name}": share(nc, name), f"excess_{name}": e["excess"],
                        f"excess_lo95_{name}": e["ci95"][0], f"excess_hi95_{name}": e["ci95"][1], f"p_{name}": e["p"],
                        f"significant_{name}": int(e["p"] is not None and e["p"] < ALPHA),
                        f"null_count_{name}": k_n, f"null_n_{name}": n_n, f"model_count_{name}_at_null": k_m,
                        f"model_n_{name}_at_null": n_m, f"frac_{name}_at_null": share(mc, name)}
                continue
            e = n["excess"].get(name, {"excess": None, "ci95": [None, None]})
            ci = n["bootstrap"].get(name, {"ci95": [None, None]})["ci95"]
            p = None
            if nc and mc:  # the exact test, from the counts (any version's file)
                p = exceeds(mc[name], sum(mc.values()), nc[name], sum(nc.values()))
            row |= {f"null_{name}": n["fractions"].get(name), f"null_lo95_{name}": ci[0],
                    f"null_hi95_{name}": ci[1], f"excess_{name}": e["excess"],
                    f"excess_lo95_{name}": e["ci95"][0], f"excess_hi95_{name}": e["ci95"][1],
                    f"p_{name}": p, f"significant_{name}": int(p is not None and p < ALPHA),
                    # the counts the test compared (the model's at the null's |S'|), for pooled tests
                    f"null_count_{name}": nc.get(name) if nc else None,
                    f"model_count_{name}_at_null": mc.get(name) if mc else None,
                    f"frac_{name}_at_null": (mc[name] / sum(mc.values())
                                             if mc else  # a file of an early version:
                                             s["fractions"][name] if n["n_synthetic"] == s["n_synthetic"] else None)}
        row["null_n"] = sum(n["counts"].values()) if n.get("counts") else None
        row["model_n_at_null"] = sum(n["model_counts"].values()) if n.get("model_counts") else None
        row["null_n_synthetic"] = n["n_synthetic"]
    if (point.path / layout.MANIFOLD).exists():  # samples unlike any real data (mem2gen.core.null)
        m = read_json(point.path / layout.MANIFOLD)
        row |= {"off_manifold": m["all"]["fraction"], "off_manifold_lo95": m["all"]["ci95"][0],
                "off_manifold_hi95": m["all"]["ci95"][1], "generalized_off_manifold": m["generalized"]["fraction"]}
    if (point.path / layout.QUALITY).exists():  # FD / KID against real data (mem2gen.quality)
        q = read_json(point.path / layout.QUALITY)
        row |= {"quality_fd": q["fd"], "quality_kid": q["kid"], "quality_real_fd": q["real_fd"]}
    return row


def label_counts(rows, point_rows) -> np.ndarray:
    """The label counts of each K of ``rows``, (M, 3); or (M, R, 3) when every K has the same R > 1 models
    in ``point_rows`` (for the hierarchical capacity draws, :func:`mem2gen.core.stats.capacity_draws`)."""
    by_k: dict = {}
    for r in point_rows:
        by_k.setdefault(r["K"], []).append([r[f"count_{n}"] for n in LABELS])
    reps = {len(v) for v in by_k.values()}
    if len(reps) == 1 and reps != {1} and set(by_k) == {r["K"] for r in rows}:
        return np.array([by_k[r["K"]] for r in rows])
    return np.array([[r[f"count_{n}"] for n in LABELS] for r in rows]) if reps == {1} else \
        np.array([np.sum(by_k[r["K"]], axis=0) for r in rows])


def read_rows(path) -> list[dict]:
    """The rows of a results.csv (or points.csv), numbers as numbers, empty cells as None and the old names of
    renamed columns filled in (:func:`mem2gen.runs.schema.with_old_names`)."""
    def value(v):
        if v == "":
            return None
        for kind in (int, float):
            try:
                return kind(v)
            except ValueError:
                pass
        return v

    with open(path, newline="") as f:
        return [with_old_names({k: value(v) for k, v in r.items()}) for r in csv.DictReader(f)]


def replicate_points(tables: list[list[dict]]) -> list[dict]:
    """One table per model (e.g. the results.csv of runs made by ``--grid seed=0,1,2``) as point rows with
    a ``replicate`` index, over the K that every table holds; rows of tables made before
    ``frac_<class>_at_null`` existed get it from their counts."""
    check(len(tables) >= 2, "pooling needs the results of two or more replicate runs")
    for i, t in enumerate(tables):
        check(t and all(isinstance(r.get("K"), int) for r in t),
              f"table {i + 1} has no K column of whole numbers: is it a results.csv of mem2gen?")
    common = set.intersection(*({r["K"] for r in t} for t in tables))
    check(len(common) > 0, "the tables share no size K")
    seen: dict = {}
    for i, t in enumerate(tables):  # one model's evidence counted once (tables of earlier versions: by their files)
        for r in t:
            if r.get("model_digest"):
                key = (r["K"], r["model_digest"])
                check(key not in seen, f"tables {seen.get(key, 0) + 1} and {i + 1} hold the same model's results "
                                       f"(K = {r['K']}, model {str(r['model_digest'])[:12]}): pool each model once")
                seen[key] = i
    for key in ("n_eval", "synthetic_per_K", "null_n_synthetic"):  # one setting: the same |S_eval| and |S'|
        for k in sorted(common):
            vals = {r.get(key) if key != "synthetic_per_K" else r.get(key) or r["n_synthetic"] / r["K"]
                    for t in tables for r in t if r["K"] == k}
            check(len(vals) == 1, f"the tables differ in {key} at K = {k} ({sorted(map(str, vals))}): pool replicates "
                                  "of one setting")
    out = []
    for i, t in enumerate(tables):
        for r in t:
            if r["K"] not in common:
                continue
            r = dict(r, replicate=i)
            for name in TESTED:
                n = r.get("model_n_at_null") if name != "spurious_nonmem" else r.get(f"model_n_{name}_at_null")
                if r.get(f"frac_{name}_at_null") is None and n and r.get(f"model_count_{name}_at_null") is not None:
                    r[f"frac_{name}_at_null"] = r[f"model_count_{name}_at_null"] / n
            r.setdefault("synthetic_per_K", r["n_synthetic"] / r["K"])
            out.append(conditional_from_counts(r))
    return out


def conditional_from_counts(r: dict) -> dict:
    """A point row of a version before the conditional form (``spurious_nonmem``) with it filled in from its
    counts: the spurious share among non-memorized samples is count_spurious / (n − count_memorized), for
    S_eval, for the model at the null's |S'| and for the null (eq 5 on the samples that eq 4 left)."""
    need = ("count_spurious", "count_memorized", "n_eval", "null_count_spurious", "null_count_memorized", "null_n",
            "model_count_spurious_at_null", "model_count_memorized_at_null", "model_n_at_null")
    if r.get("null_spurious_nonmem") is not None or any(r.get(c) is None for c in need):
        return r

    def ratio(a, b):
        return a / b if b else None

    n_null, n_model = r["null_n"] - r["null_count_memorized"], r["model_n_at_null"] - r["model_count_memorized_at_null"]
    return {**r, "frac_spurious_nonmem": ratio(r["count_spurious"], r["n_eval"] - r["count_memorized"]),
            "null_count_spurious_nonmem": r["null_count_spurious"], "null_n_spurious_nonmem": n_null,
            "null_spurious_nonmem": ratio(r["null_count_spurious"], n_null),
            "model_count_spurious_nonmem_at_null": r["model_count_spurious_at_null"],
            "model_n_spurious_nonmem_at_null": n_model,
            "frac_spurious_nonmem_at_null": ratio(r["model_count_spurious_at_null"], n_model)}


def pool(points: list[dict]) -> list[dict]:
    """Model-level rows (:func:`model_row`) per K from point rows of several models
    (:func:`replicate_points`), Holm-corrected over the K."""
    by_k: dict = {}
    for r in points:
        by_k.setdefault(r["K"], []).append(r)
    out = [model_row(group) for _, group in sorted(by_k.items())]
    for name in TESTED:
        if all(f"p_{name}" in r for r in out):
            mark_significant(out, name)
    return out
