"""What mem2gen writes about a sweep's results: its tables (results.csv, points.csv, capacities.json), its
phase diagram and a self-contained report.html (figures embedded, no network). Reads finished runs through
:class:`mem2gen.runs.run.Run`; never runs anything."""
from __future__ import annotations

import base64
import html
import importlib.metadata as md
import json
import platform
from pathlib import Path

from ..core.plots import phase_diagram, samples_figure
from ..core.stats import LABELS, capacities, capacity_bootstrap, pooled_excess, pooled_models_excess, still_falling
from ..core.timescales import censored_text
from ..errors import DamagedFile, check
from ..io import layout
from ..io.files import read_json, write_csv, write_json, write_text
from . import schema
from .results import label_counts
from .run import Run
from .verify import published_problems


def _img(path: Path, alt: str, width: str = "100%") -> str:
    if not path.exists():
        return f"<p><em>{html.escape(alt)}: not available</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" style="max-width:{width}" src="data:image/png;base64,{data}">'


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("mem2gen", "torch", "numpy", "diffusers", "matplotlib"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def aggregate(run_dir, *, echo=print) -> dict:
    """results.csv (one row per K; model-level with replicates), points.csv (one row per point, with
    replicates), capacities.json, the phase diagram and report.html from a run's finished points."""
    run = Run(run_dir)
    cfg = run.config
    bad = {p.key: found for p in run.points() if p.state == "classified" and (found := published_problems(p))}
    check(not bad, "not publishing: " + "; ".join(f"K={k}: {', '.join(v)}" for k, v in bad.items())
          + f". `mem2gen status {run.path} --verify` lists them; `mem2gen sweep` with the same settings redoes them")
    rows = run.results()
    check(len(rows) > 0, f"{run.path}: no point is classified yet; run the sweep first")
    point_rows = run.point_results()
    write_csv(run.path / "results.csv", rows, fields=schema.ordered(rows))
    if run.replicates > 1:
        write_csv(run.path / "points.csv", point_rows, fields=schema.ordered(point_rows))
    K = [r["K"] for r in rows]
    fr = {name: [r[f"frac_{name}"] for r in rows] for name in LABELS}
    sig = [r["significant_spurious"] for r in rows] if all("significant_spurious" in r for r in rows) else None
    off = [r.get("generalized_off_manifold") is not None and r["generalized_off_manifold"] > 0.5 for r in rows]
    caps = capacities(K, fr["memorized"], fr["spurious"], fr["generalized"], tol=cfg.capacity_tol,
                      spurious_significant=sig, off_data=off)
    caps["bootstrap"] = capacity_bootstrap(K, label_counts(rows, point_rows), tol=cfg.capacity_tol, seed=cfg.seed,
                                           spurious_significant=sig, off_data=off)
    caps["inference"] = "models" if any(r["n_replicates"] > 1 for r in rows) else "one model"
    if None in (caps["MC"], caps["GC"]):
        caps["pooled_spurious"] = None
    elif caps["inference"] == "models":
        caps["pooled_spurious"] = pooled_models_excess(point_rows, caps["MC"], caps["GC"])
    else:
        caps["pooled_spurious"] = pooled_excess(rows, caps["MC"], caps["GC"])
    caps["warnings"] = training_warnings(run, rows, point_rows)
    write_json(run.path / "capacities.json", caps)
    phase_diagram(rows, caps, run.path / "phase.png", replicates=point_rows if run.replicates > 1 else None,
                  title=f"{cfg.name}: {cfg.data}, {cfg.distance}, δm={cfg.delta_m:.3g}, δs={cfg.delta_s:.3g}")
    samples_figure([(p.k, p.eval[:12]) for p in run.points(replicate=0) if p.state == "classified"],
                   run.path / "samples.png")
    write_report(run, rows, caps)
    echo(format_table(rows, caps))
    echo(f"report: {run.path / 'report.html'}")
    return {"rows": rows, "capacities": caps}


def training_warnings(run: Run, rows: list[dict], point_rows: list[dict]) -> list[str]:
    """Signs that the models are under-trained, which makes capacities and spurious excesses read a
    training budget rather than the data: the smallest K not memorized (P(mem) < 1 − ε there), or a
    training loss still falling at the end of training (:func:`mem2gen.core.stats.still_falling`)."""
    cfg = run.config
    if cfg.model.kind == "optimal" or cfg.checkpoints:
        return []
    out = []
    first = rows[0]
    if first["frac_memorized"] < 1 - cfg.capacity_tol:
        out.append(f"the smallest K ({first['K']}) is memorized at {first['frac_memorized']:.1%} < 1 − ε = "
                   f"{1 - cfg.capacity_tol:.0%}: the models may not have finished training (or K = {first['K']} "
                   "is past memorization)")
    falling = []
    for p in run.points():
        if p.state != "classified":
            continue
        try:
            losses = read_json(p.path / layout.MODEL / layout.MODEL_RECORD).get("losses") or []
        except (ValueError, OSError):
            continue
        if still_falling(losses):
            falling.append(str(p.key))
    if falling:
        out.append(f"the training loss is still falling at the end of training at K = {', '.join(falling)}: "
                   "longer training may change these fractions")
    return out


def display(rows, caps, *, full: bool = False) -> tuple[list[str], list[list[str]]]:
    """The cells of the results table, for the printed table (``full=False``) and report.html (``full``):
    (headers, one list of cells per row). Both forms of the null side by side (:mod:`mem2gen.core.null`)."""
    null = all("null_spurious" in r for r in rows)
    models = caps.get("inference") == "models"
    on_data = full and all(r.get("off_manifold") is not None for r in rows)
    scored = full and all(r.get("quality_fd") is not None for r in rows)
    spread = "sd between models" if models else "bootstrap std"
    heads = ["K", "R"] + (["|S'|"] if full else []) + [f"{n} (± {spread}{', 95%' if full else ''})" for n in LABELS]
    forms = (("spurious", "spurious"), ("spurious_nonmem", "spurious | not memorized"))
    if null:
        for _, title in forms:
            heads += [f"{title}: model at null |S'|", "null", "excess [95%]"]
    if on_data:
        heads += ["off-manifold [95%]", "of the generalized"]
    if scored:
        heads += [f"FD (real: {rows[0]['quality_real_fd']:.2f})", "KID"]
    body = []
    for r in rows:
        cells = [str(r["K"]), str(r["n_replicates"])] + ([str(r["n_synthetic"])] if full else [])
        cells += [f"{r[f'frac_{n}']:.3f} ± {num(r[f'std_{n}'])}"
                  + (f" [{num(r[f'lo95_{n}'])}, {num(r[f'hi95_{n}'])}]" if full else "") for n in LABELS]
        for name, _ in forms if null else ():
            if r.get(f"null_{name}") is None or r.get(f"excess_{name}") is None:
                cells += ["–", "–", "no held-out data" if r.get("null_spurious") is None else "undefined"]
                continue
            star = " *" if r.get(f"significant_{name}") else ""
            cells += [num(r.get(f"frac_{name}_at_null")), f"{r[f'null_{name}']:.3f}",
                      f"{r[f'excess_{name}']:+.3f} [{num(r.get(f'excess_lo95_{name}'), '+.3f')}, "
                      f"{num(r.get(f'excess_hi95_{name}'), '+.3f')}]{star}"]
        if on_data:
            g = r.get("generalized_off_manifold")
            cells += [f"{r['off_manifold']:.3f} [{r['off_manifold_lo95']:.3f}, {r['off_manifold_hi95']:.3f}]",
                      "–" if g is None else f"{g:.3f}" + (" WARNING" if off_manifold_warning(r) else "")]
        if scored:
            cells += [f"{r['quality_fd']:.2f}", f"{r['quality_kid']:.4f}"]
        body.append(cells)
    return heads, body


def format_table(rows, caps) -> str:
    """The printed table: fractions per K, the null and the excess over it in both forms, capacities and the
    caveats."""
    null = all("null_spurious" in r for r in rows)
    models = caps.get("inference") == "models"
    spread = "sd between models" if models else "bootstrap std"
    heads, body = display(rows, caps)
    widths = [max(len(c) for c in col) for col in zip(heads, *body)]
    lines = [" ".join(f"{c:>{w}}" for c, w in zip(cells, widths)) for cells in [heads, *body]]
    lines.append(f"R: models per K; ± {spread}" + ("; fractions are means over the models, intervals t-intervals "
                                                   "over them" if models else
                                                   "; one model per K: between-model variance is not measured, and "
                                                   "models differ more than samples do"))
    if null:
        lines.append("the null and the model's spurious fraction beside it are taken at equal |S_eval| and |S'| "
                     "(the full |S'| unless the held-out data are fewer), in both forms: unconditional, and the "
                     "spurious share among non-memorized samples (eq 5 counts only those); * above the null: "
                     + ("one-sided t-test of the models' excesses over their own nulls, Holm-corrected over the "
                        "table, family-wise 5%" if models else
                        "within this one model (one-sided exact test over its samples, Holm-corrected over the table, "
                        "family-wise 5%); says nothing of another training seed"))
    lines.append("capacities between the grid's sizes (tolerance " + f"{caps['tol']}): "
                 + "; ".join(bracket_text(caps, key, why=False) for key in ("MC", "SC", "GC")))
    for key in ("MC", "SC", "GC"):
        dist = caps.get("bootstrap", {}).get(key, {}).get("distribution")
        if dist:
            lines.append(f"  {key} on the grid over {'hierarchical ' if models else ''}bootstrap draws of the labels "
                         "(blind between grid points): "
                         + ", ".join(f"K={k} {v:.0%}" for k, v in sorted(dist.items(), key=lambda kv: int(kv[0]))))
    for key, why in caps.get("reasons", {}).items():
        lines.append(f"{key} undetermined: {why}")
    w = caps.get("pooled_spurious")
    if w and models:
        lines.append(f"between MC and GC ({len(w['sizes'])} sizes pooled per model): excess over the null "
                     f"{w['excess']:+.2%} [{num(w['ci95'][0], '+.2%')}, {num(w['ci95'][1], '+.2%')}] over "
                     f"{w['replicates']} models, one-sided t-test p = {num(w['p'], '.2g')}")
    elif w:
        lines.append(f"between MC and GC ({len(w['sizes'])} sizes pooled): spurious {w['model_fraction']:.2%} "
                     f"({w['model']}/{w['model_n']}) against the null's {w['null_fraction']:.2%} ({w['null']}/{w['null_n']}), "
                     f"one-sided exact p = {w['p']:.2g} within one model per K")
    if all(r.get("quality_fd") is not None for r in rows):
        lines.append("sample quality, FD to real data in features trained on the dataset (lower is better; real vs "
                     f"real: {rows[0]['quality_real_fd']:.2f}; not Inception FID): "
                     + ", ".join(f"K={r['K']} {r['quality_fd']:.2f}" for r in rows))
    if all(r.get("off_manifold") is not None for r in rows):
        worst = max(rows, key=lambda r: r["off_manifold"])
        lines.append(f"off-manifold samples (farther from all real data than 99% of real items): at most "
                     f"{worst['off_manifold']:.1%} (K={worst['K']})")
        for r in rows:
            if off_manifold_warning(r):
                lines.append(f"WARNING K={r['K']}: {r['generalized_off_manifold']:.0%} of the generalized samples are "
                             "off-manifold: 'generalized' there means unlike the training set, not good")
    for w in caps.get("warnings", []):
        lines.append(f"WARNING (under-training): {w}; the capacities and spurious excesses above may move with "
                     "longer training")
    return "\n".join(lines)


def bracket_text(caps: dict, key: str, *, why: bool = True) -> str:
    """'MC in [8, 32)' (the grid interval that holds a capacity, :func:`mem2gen.core.stats.brackets`), or
    why it is undetermined; a capacities.json of an earlier version without brackets gives the grid K."""
    b = caps.get(f"{key.lower()}_bracket")
    if b:
        return b["text"]
    if caps.get(key) is not None:
        return f"{key} = {caps[key]} (on the grid)"
    return f"{key} undetermined" + (f": {caps['reasons'][key]}" if why and caps.get("reasons", {}).get(key) else "")


def num(value, spec: str = ".3f") -> str:
    """``value`` formatted by ``spec``, or a dash when there is none."""
    return "–" if value is None else format(value, spec)


def off_manifold_warning(row) -> bool:
    """Whether a point's 'generalized' samples are mostly not data-like (more than half off-manifold)."""
    g = row.get("generalized_off_manifold")
    return g is not None and row["frac_generalized"] >= 0.1 and g > 0.5


def calibration_section(run: Run) -> str:
    """The Calibration section from the points' calibration.json (after `mem2gen calibrate`)."""
    found = [read_json(p.path / layout.CALIBRATION) for p in run.points() if (p.path / layout.CALIBRATION).exists()]
    if not found:
        return ""
    rows = []
    for r in found:
        m, n = r["model_curve"], r["null_curve"]
        cells = [str(r["K"])] + [f"{c['spurious']:.3f} (m={c['m']})" for c in (m[0], m[-1])] + (
            [f"{c['spurious']:.3f} (m={c['m']})" for c in (n[0], n[-1])] if n else ["–", "no held-out data"])
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ["K", "model, smallest |S'|", "model, the run's |S'|", "null, smallest |S'|",
                                             "null, largest |S'|"])
    return f"""<h2>Calibration</h2>
<p>Eq 5 compares a sample's distance to its nearest neighbour in S' with its distance to the training set, so
its answer grows with |S'|: with more samples, some fall close to any sample. The null applies the same rule
to real held-out items (S_eval and S' drawn from the data outside S_K): a spurious fraction means something
only where it stands above the null at the same |S'|. Left: the spurious fraction as S' grows (its first m
samples); middle and right: over δs (dashed: the run's δs = {run.config.delta_s:.3g}).</p>
{_img(run.path / 'calibration.png', 'calibration', '100%')}
<table><tr>{head}</tr>{''.join(rows)}</table>"""


def landscape_section(run: Run) -> str:
    """The Landscape section from the points' landscape.json (empty until `mem2gen landscape` ran)."""
    found = [(p.k, read_json(p.path / layout.LANDSCAPE)) for p in run.points() if (p.path / layout.LANDSCAPE).exists()]
    if not found:
        return ""

    def med(r, g, key="median_t_c"):
        v = r["recovery"].get(g, {}).get(key)
        return "–" if v is None else f"{v:.0f}" if key == "median_t_c" else f"{v:.2f}"

    def frac(d, *keys):
        for k in keys:
            d = d.get(k, {}) if isinstance(d, dict) else {}
        return "–" if d == {} or d is None else f"{d:.2f}"

    head = ["K", "δ", "t_c train", "t_c mem", "t_c spu", "t_c gen", "radius train", "radius gen",
            "spu: separate basin", "minima mem/spu/gen", "attractors (training) of m followed",
            "eq 5 spurious, smallest → largest m", "mixture-3 explains spu / gen"]
    body = []
    for k, r in found:
        c, curve = r["census"], r["census"]["curve"]
        mins = "/".join(frac(r["curvature"], n, "minimum_fraction") for n in LABELS)
        spu = " → ".join("–" if e["spurious_eq5"] is None else f"{e['spurious_eq5']:.3f}" for e in (curve[0], curve[-1]))
        cells = [str(k), f"{r['delta']:.3g}", med(r, "training item"), med(r, "memorized"), med(r, "spurious"),
                 med(r, "generalized"), med(r, "training item", "median_radius"), med(r, "generalized", "median_radius"),
                 frac(r["energy"], "spurious", "separate_basin"), mins,
                 f"{c['n_attractors']} ({c['n_training']}) of {curve[-1]['m']}", spu,
                 f"{frac(r['mixture'], 'spurious', 'by_m', '3', 'explained')} / "
                 f"{frac(r['mixture'], 'generalized', 'by_m', '3', 'explained')}"]
        body.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in cells) + "</tr>")
    s0 = found[0][1]["settings"]
    return f"""<h2>Landscape</h2>
<p>Recovery time t_c: the largest step from which the reverse process (DDIM {s0['steps']} steps) returns within
δ = {s0['delta_frac']} × the median nearest-neighbour spacing of S_K with probability ≥ {s0['p']}
({s0['trials']} noises); radius: the rms size of the noise there. Energy E_t = −log p_t and its curvature at
t = {s0['t_energy']}: "separate basin" = the energy rises on the way to both nearest training items;
"minima" = the smallest Hessian eigenvalue found is positive. Attractors: end points of the denoiser
fixed-point iteration at t = {s0['t_follow']} from samples of S', merged within δ; in parentheses those
sitting on a training item. Mixture: a convex combination of the 3 nearest training items within
{s0['mixture_explained']:.3g} × d(x, x1) of the sample.</p>
{_img(run.path / 'landscape.png', 'landscape', '100%')}
<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{''.join(body)}</table>
{''.join(f"<h3>K = {k}: energy profiles and the best-explained mixtures</h3>"
         f"{_img(run.point(k).path / layout.LANDSCAPE_FIGURE, f'landscape at K={k}', '90%')}" for k, _ in found)}"""


def tau_text(value, status: str) -> str:
    """A crossing time (:func:`mem2gen.core.timescales.crossing`) as text: '740', '≤ 93' (already there at the
    first snapshot) or 'never'."""
    return "never" if status == "never" else f"≤ {value:.0f}" if status == "before" else f"{value:.0f}"


def dynamics_section(run: Run) -> str:
    """The Dynamics section from dynamics.json (empty until `mem2gen dynamics` ran)."""
    f = run.path / "dynamics.json"
    if not f.exists() or "per_K" not in read_json(f):
        return ""
    d = read_json(f)
    st = d["settings"]

    t = tau_text
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            r["K"], t(r["tau_mem"], r["tau_mem_status"]), t(r["tau_mem_05"], r["tau_mem_05_status"]),
            r["tau_gen"] or "–", r["spurious_onset"] or "–", f"{r['max_spurious']:.3f}")) + "</tr>" for r in d["per_K"])
    fit = d["fit"]
    if fit["a"] is None:
        fit_text = f"τ_mem ∝ K^a is not fitted: {html.escape(fit['reason'])}."
    else:
        ci = f", 95% interval [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}]" if fit.get("ci95") else ""
        fit_text = (f"τ_mem ∝ K^a with a = {fit['a']:.2f}{ci} (least squares over K = {fit['K']}; the interval "
                    "resamples the labels and places each τ anywhere between its two snapshots)" + (f"; {html.escape(fit['reason'])}" if fit.get("reason") else "") + ".")
    if d.get("fit_censored"):
        fit_text += " " + html.escape(censored_text(d["fit_censored"])) + "."
    return f"""<h2>Dynamics</h2>
<p>Each kept EMA snapshot of each point, sampled ({st['n_eval']} S_eval, |S'| ≤ {st['synthetic_cap']}) and labelled
by the same rule. τ_mem: the first step at which the memorized fraction reaches {st['level']} (log-interpolated
between snapshots; "≤" when the first snapshot is already there); "5%": where it first reaches 0.05; τ_gen: the
snapshot with the lowest held-out denoising loss; spurious onset: the first snapshot whose spurious fraction
exceeds the rule's null (held-out real data at the same |S_eval| and |S'|; one-sided exact test, Holm-corrected over the table, family-wise 5%)
(at K = N, with nothing held out: the first with spurious ≥ {st['spurious_onset']}); + marks those cells. {fit_text}</p>
{_img(run.path / 'dynamics.png', 'dynamics', '90%')}
<table><tr>{''.join(f'<th>{h}</th>' for h in ['K', 'τ_mem', 'memorized 5%', 'τ_gen', 'spurious onset', 'max spurious'])}</tr>{body}</table>"""


def write_report(run: Run, rows: list, caps: dict) -> Path:
    """report.html of a run: phase diagram, capacities, fractions, neighbour grids, configuration."""
    cfg = run.config
    ks = [r["K"] for r in rows]
    picks = []
    for label, k in (("memorization (smallest K)", ks[0]), ("spurious capacity SC", caps.get("SC")),
                     ("generalization (largest K)", ks[-1])):
        same = [i for i, (kk, _) in enumerate(picks) if kk == k]
        if k is not None and same:  # one grid per K, naming every role it plays
            picks[same[0]] = (k, picks[same[0]][1] + " and " + label)
        elif k is not None:
            picks.append((k, label))
    try:  # the manifest only adds timings: a damaged one (made again by the next sweep) shows none
        man = read_json(run.path / layout.MANIFEST, {"points": {"*": dict}})
    except (DamagedFile, OSError):
        man = {"points": {}}
    models = caps.get("inference") == "models"
    heads, cells = display(rows, caps, full=True)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in heads + ["training time (s)", "sampling time (s)",
                                                                   "classification time (s)"])
    body = []
    for r, c in zip(rows, cells):
        t = man["points"].get(str(r["K"]), {})
        c = c + [str(t.get(x, "")) for x in ("train_s", "sample_s", "classify_s")]
        body.append("<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in c) + "</tr>")

    def dist(key):
        d = caps["bootstrap"][key].get("distribution") or {}
        return ", ".join(f"K={k}: {v:.0%}" for k, v in sorted(d.items(), key=lambda kv: int(kv[0]))) or "–"

    def interval(key):
        ci = caps["bootstrap"][key].get("ci95")
        return "– (undetermined in every draw)" if ci is None else f"[{ci[0]:,.0f}, {ci[1]:,.0f}]"

    cap_rows = "".join(
        f"<tr><td>{key}</td><td>{html.escape(bracket_text(caps, key))}</td>"
        f"<td>{num(caps['bootstrap'][key]['median'], ',.0f')}</td>"
        f"<td>{html.escape(interval(key))}</td><td>{caps['bootstrap'][key]['defined']:.2f}</td>"
        f"<td>{html.escape(dist(key))}</td></tr>"
        for key in ("MC", "SC", "GC"))
    w = caps.get("pooled_spurious")
    if w and models:
        pooled = (f"<p>Between MC and GC ({len(w['sizes'])} sizes pooled per model) the excess of the spurious fraction "
                  f"over the null is {w['excess']:+.2%} [{num(w['ci95'][0], '+.2%')}, {num(w['ci95'][1], '+.2%')}] "
                  f"over {w['replicates']} models; one-sided t-test p = {num(w['p'], '.2g')}.</p>")
    elif w:
        pooled = (f"<p>Between MC and GC ({len(w['sizes'])} sizes pooled) the spurious fraction is {w['model_fraction']:.2%} "
                  f"({w['model']}/{w['model_n']}) against the null's {w['null_fraction']:.2%} ({w['null']}/{w['null_n']}); "
                  f"one-sided exact p = {w['p']:.2g} within one model per K. Per K, an excess is marked only when it "
                  "survives Holm's correction over all sizes (family-wise 5%), so a small excess spread over the "
                  "transition can show here and at no single K.</p>")
    else:
        pooled = ""
    inference = (f"<p><strong>Model-level inference</strong>: {max(r['n_replicates'] for r in rows)} models per K "
                 "(the same S_K, other seeds). Fractions are means over the models, ± their between-model sd, "
                 "intervals t-intervals over the models; \"above the null\" is a one-sided t-test of the models' "
                 "excesses, each over its own null at equal |S_eval| and |S'|, Holm-corrected over K.</p>" if models else
                 "<p><strong>One model per K</strong>: the intervals and tests resample that model's samples; the "
                 "variance between models trained with other seeds is not measured (it is larger: "
                 "<code>replicates: 3</code> measures it). \"Above the null\" here holds within this one model.</p>")
    warn = "".join(f"<p style='color:darkred'><strong>Under-training warning</strong>: {html.escape(x)}; the capacities "
                   "and spurious excesses on this page may move with longer training.</p>" for x in caps.get("warnings", []))
    grids = "".join(f"<h3>K = {k}: {html.escape(label)}</h3>"
                    f"{_img(run.point(k).path / layout.GRID, f'neighbours at K={k}', '60%')}"
                    for k, label in picks)
    title = run.path.name + ("" if cfg.name == run.path.name else f" (config {cfg.name})")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>mem2gen sweep {html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 7px;text-align:right}}pre{{background:#f6f6f6;padding:1em;font-size:12px}}</style></head><body>
<h1>Memorization → spurious → generalization: {html.escape(title)}</h1>
<p>Data <code>{html.escape(cfg.data)}</code>, distance <code>{html.escape(cfg.distance)}</code>,
δm = {cfg.delta_m:.4g}, δs = {cfg.delta_s:.4g} (Pham et al. 2025, eqs 4-6); |S_eval| = {cfg.n_eval},
|S'| = {cfg.synthetic_factor}·K{f" (at most {cfg.synthetic_cap}: |S'|/K falls with K above {cfg.synthetic_cap // cfg.synthetic_factor})" if cfg.synthetic_cap else ""}; error bars: bootstrap, {cfg.bootstrap_iterations} iterations (App. B.1), or t-intervals over models.
FD and KID (where shown) compare S_eval with real data in the features of a small autoencoder trained on the
dataset (lower is better; "real" is real data against itself at the same size); they rank samples of this
dataset and are not Inception FID.</p>
{_img(run.path / 'phase.png', 'phase diagram', '75%')}
<h2>Capacities (eqs 1-3, tolerance ε = {caps['tol']})</h2>
{warn}
<table><tr><th>capacity</th><th>between the grid's sizes</th><th>bootstrap median (on the grid; blind between its sizes)</th><th>95% interval</th><th>share of draws
where defined</th><th>share of draws at each K</th></tr>{cap_rows}</table>
{pooled}
{inference}
<h2>Fractions</h2>
<p>Each sample of S_eval is <em>memorized</em> (eq 4: its nearest training item much closer than the second),
<em>spurious</em> (eq 5: not memorized, but much closer to another of the model's samples in S' than to any
training item) or <em>generalized</em> (eq 6: neither). The <em>null</em> is the same rule applied to real held-out
items in place of the model's samples, at the same |S_eval| and |S'|; the <em>excess</em> is the spurious fraction
minus its null, both at the null's |S'| (the column "model spurious at the null's |S'|"; the dataset can run out of held-out items
for a full S'). <em>Off-manifold</em>: samples farther from every real item than 99% of real held-out items are;
"of the generalized" is that share among the generalized samples. MC, SC, GC: eqs 1-3. Every column of
results.csv is described in the documentation's results.csv page.</p>
<table><tr>{head}</tr>{''.join(body)}</table>
<h2>Samples (the first 12 of S_eval at each K)</h2>{_img(run.path / 'samples.png', 'samples per K', '80%')}
<h2>Neighbours (upper row: training set S; lower row: synthetic set S')</h2>{grids}
{calibration_section(run)}
{landscape_section(run)}
{dynamics_section(run)}
<h2>Configuration</h2><pre>{html.escape(json.dumps(cfg.to_dict(), indent=2))}</pre>
<h2>Versions</h2><pre>{html.escape(json.dumps(versions(), indent=2))}</pre>
</body></html>"""
    write_text(run.path / "report.html", page)
    return run.path / "report.html"
