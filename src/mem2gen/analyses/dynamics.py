"""Training dynamics: the phases over (K, training step), read from a sweep's EMA snapshots.

A phase diagram is one slice of a (K, training time) map: memorization sets in at a time τ_mem that
grows with K, while the held-out loss is lowest at a time τ_gen that hardly does (Bonnaire et al.
2025, arXiv 2505.17638). For every point and every saved snapshot (``train.save_steps``, plus the
finished model) this module draws a smaller S_eval and S', applies the paper's rule (eqs 4-6, the
run's distance and thresholds) and measures the denoising loss on S_K and on held-out items, and how many samples are
off-manifold
(:func:`mem2gen.core.checks.off_manifold`):

    runs/<name>/points/K=<k>/dynamics/step-<s>.json   one (K, step), written atomically (resume unit)
                dynamics.json                          the settings, τ's and the power-law fit
                dynamics.csv                           one row per (K, step)
                dynamics.png                           the map, τ_mem(K) and the fit

Definitions (stated here because the paper has none):

- τ_mem(K) at level L: the first step at which the memorized fraction reaches L (½ by default; also
  reported at 0.05), interpolated linearly in log step between the two snapshots that bracket the
  crossing. Censored when the first snapshot is already at L ("≤ s₀") or no snapshot reaches it.
- τ_gen(K): the snapshot step with the lowest held-out loss (undefined at K = N: nothing held out).
- spurious onset: the first step whose spurious fraction exceeds the rule's null at that K (held-out
  real data, the same |S_eval| and |S'|; Fisher's one-sided exact test, Holm-corrected over every
  (K, step) cell, family-wise 5%); at K = N, with nothing held
  out, the first step whose spurious fraction reaches ``spurious_onset`` (1% by default).
- the fit: least squares of log τ_mem on log K over the K with a bracketed τ_mem
  (:mod:`mem2gen.core.timescales`); its 95% interval resamples every (K, step)'s labels and places each τ
  anywhere between its two snapshots, so it holds both the classification noise and the snapshot grid.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass

import numpy as np

from ..core.checks import off_manifold
from ..core.null import excess, null_rates, share
from ..core.plots import COLORS, log_edges, pyplot, save
from ..core.rule import classify
from ..core.stats import LABELS, mark_significant, model_interval, model_test
from ..core.timescales import censored_units, crossing, fit_censored, fit_tau_mem
from ..errors import Mem2genError, check
from ..io import layout
from ..io.config import check_fields
from ..io.data import to_float
from ..io.files import read_json, run_lock, write_csv, write_json
from ..runs.executors import Sequential, make_executor
from ..runs.report import aggregate
from ..runs.run import Point, Run, parse_key
from .points import draw_samples, snapshot_path, snapshot_seed, snapshot_steps


@dataclass(frozen=True)
class DynamicsConfig:
    """What ``mem2gen dynamics`` measures at each (K, step)."""

    n_eval: int = 200  # |S_eval| per (K, step)
    synthetic_cap: int = 512  # |S'| = min(the run's synthetic_factor·K, this)
    loss_items: int = 256  # training and held-out items for the two losses
    loss_draws: int = 4  # (t, ε) draws per item
    bootstrap_iterations: int = 2000
    level: float = 0.5  # τ_mem: the memorized fraction that defines it
    spurious_onset: float = 0.01  # the spurious fraction that marks the onset
    fit_iterations: int = 1000  # bootstrap draws of the exponent

    def __post_init__(self):
        check_fields(self)
        for name in ("n_eval", "synthetic_cap", "loss_items", "loss_draws", "bootstrap_iterations", "fit_iterations"):
            v = getattr(self, name)
            check(isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                  f"{name} = {v!r} must be a whole number >= 1")
        check(self.synthetic_cap >= 2, "synthetic_cap must be at least 2")
        check(0 < self.level < 1 and 0 < self.spurious_onset < 1, "level and spurious_onset must lie in (0, 1)")

    def measure(self) -> dict:
        """The settings that change a (K, step) record (the rest only change the analysis)."""
        return {k: getattr(self, k) for k in ("n_eval", "synthetic_cap", "loss_items", "loss_draws",
                                              "bootstrap_iterations")} | {"record": 2}  # 2: with off-manifold


# --- one (K, step) --------------------------------------------------------------------------------

def denoising_loss(model, items, *, draws: int, seed: int, device=None, batch: int = 512) -> float:
    """The DDPM loss ‖ε − ε_θ(x_t, t)‖² (per coordinate) of ``items``, averaged over ``draws`` fixed
    (t, ε) draws per item: the same draws for every snapshot, so steps compare without noise."""
    import torch

    from ..models import diffusion

    x = torch.from_numpy(to_float(items)).reshape(len(items), *model.sample_shape)
    g = torch.Generator().manual_seed(seed)
    total, n = 0.0, 0
    with torch.no_grad():
        for _ in range(draws):
            for lo in range(0, len(x), batch):
                xb = x[lo:lo + batch].to(device or "cpu")
                total += float(diffusion.loss(model, diffusion.Schedule(), xb, generator=g)) * len(xb)
                n += len(xb)
    return total / n


def measure_step(point: Point, step: int, settings: DynamicsConfig = DynamicsConfig(), *, device=None) -> dict:
    """One (K, step) record: the three fractions (with bootstrap std) of the snapshot's samples, and
    its denoising loss on S_K and on held-out items; on ``device`` (default: CUDA when present)."""
    from ..core.embed import default_device
    from ..models.networks import load_model

    device = str(device or default_device())
    cfg = point.config
    t0 = time.perf_counter()
    model = load_model(snapshot_path(point, step), device=device).eval()
    n_syn = min(cfg.n_synthetic(point.k), settings.synthetic_cap)
    ev = draw_samples(model, settings.n_eval, seed=snapshot_seed(point, step, 0), cfg=cfg, device=device)
    syn = draw_samples(model, n_syn, seed=snapshot_seed(point, step, 1), cfg=cfg, device=device)
    train = point.train_set
    c = classify(ev, train, syn, distance=cfg.distance, delta_m=cfg.delta_m, delta_s=cfg.delta_s, device=device,
                 check_duplicates=False, pixel_range="-1,1")
    boot = c.bootstrap(iterations=settings.bootstrap_iterations, seed=snapshot_seed(point, step, 2))
    loss_seed = int(np.random.SeedSequence([cfg.seed, point.k, 5, 77]).generate_state(1)[0])  # same for every step
    rng = np.random.default_rng([cfg.seed, point.k, 56])
    items = train[np.sort(rng.permutation(len(train))[:settings.loss_items])]
    other = point.held_out(settings.loss_items, [cfg.seed, point.k, 55]) if point.k < len(point.run.dataset) else None
    row = {"K": point.k, "replicate": point.replicate, "step": step, "n_eval": settings.n_eval, "n_synthetic": n_syn}
    for j, name in enumerate(LABELS):
        row |= {f"count_{name}": int(c.counts[j]), f"frac_{name}": c.fractions[name], f"std_{name}": boot[name]["std"]}
    row["train_loss"] = denoising_loss(model, items, draws=settings.loss_draws, seed=loss_seed, device=device)
    row["heldout_loss"] = (None if other is None or not len(other) else
                           denoising_loss(model, other, draws=settings.loss_draws, seed=loss_seed, device=device))

    off = off_manifold(ev, train, other if other is not None and len(other) >= 2 else None, distance=cfg.distance,
                       device=device)["off"]
    row["off_manifold"] = float(off.mean())  # noise is "generalized" by eq 6: how much of it is unlike real data
    gen = c.labels == LABELS.index("generalized")
    row["generalized_off_manifold"] = float(off[gen].mean()) if gen.any() else None
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def dynamics_null(point: Point, settings: DynamicsConfig, *, device=None) -> dict | None:
    """The rule's null at this K with the dynamics' |S_eval| and |S'| (held-out real data in place of
    samples, :func:`mem2gen.core.null.null_rates`), kept in ``dynamics/null.json``; None at K = N."""
    f = point.path / "dynamics" / layout.NULL
    if f.exists():
        return read_json(f).get("null")
    cfg = point.config
    n_left = len(point.run.dataset) - point.k
    n_syn = min(cfg.n_synthetic(point.k), settings.synthetic_cap)
    null = None
    if n_left >= 4:
        n_ev = min(settings.n_eval, n_left - 2)
        null = null_rates(point.run.dataset, point.k, n_eval=n_ev, n_synthetic=min(n_syn, n_left - n_ev),
                          split_seed=point.split_seed, split=cfg.split, seed=snapshot_seed(point, 0, 3),
                          distance=cfg.distance,
                          delta_m=cfg.delta_m, delta_s=cfg.delta_s, iterations=settings.bootstrap_iterations,
                          device=device)
    write_json(f, {"null": null})
    return null


def with_null(rows: list[dict], nulls: dict, *, iterations: int = 2000) -> list[dict]:
    """Each (K, step) row with its K's null and the excess over it in both forms (``spurious`` and
    ``spurious_nonmem``, the share among non-memorized samples; 95% interval and exact one-sided p-value,
    :func:`mem2gen.core.null.excess`): ``significant_*`` = above the null after Holm's correction over every
    (K, step) cell of the table."""
    out = []
    for r in rows:
        n = nulls.get((r["K"], r.get("replicate", 0)))
        model = [r[f"count_{x}"] for x in LABELS]
        r = {**r, "frac_spurious_nonmem": share(model, "spurious_nonmem")}
        if n is None:
            out.append({**r, "null_spurious": None, "excess_spurious": None, "significant_spurious": None,
                        "null_spurious_nonmem": None, "excess_spurious_nonmem": None,
                        "significant_spurious_nonmem": None})
            continue
        for name in ("spurious", "spurious_nonmem"):
            e = excess(model, [n["counts"][x] for x in LABELS], name=name, iterations=iterations, seed=int(r["step"]))
            r |= {f"null_{name}": share(n["counts"], name), f"excess_{name}": e["excess"],
                  f"excess_lo95_{name}": e["ci95"][0], f"excess_hi95_{name}": e["ci95"][1], f"p_{name}": e["p"]}
        out.append(r)
    return mark_significant(mark_significant(out), "spurious_nonmem")


class DynamicsJob:
    """``job(k, device=None)``: every missing (K, step) record of one point (picklable, for executors)."""

    def __init__(self, run_dir, settings: DynamicsConfig, *, device: str | None = None, echo=None):
        self.run_dir, self.settings, self.device, self.echo = str(run_dir), settings, device, echo
        self._run = None

    def __getstate__(self):
        return {**self.__dict__, "echo": None, "_run": None}

    def __call__(self, k, device: str | None = None) -> dict:
        device = device or self.device
        self._run = self._run or Run(self.run_dir)
        point = self._run.point(*parse_key(k))
        t = time.perf_counter()
        dynamics_null(point, self.settings, device=device)
        for step in snapshot_steps(point):
            f = point.path / "dynamics" / f"step-{step}.json"
            if f.exists():
                continue
            row = measure_step(point, step, self.settings, device=device)
            write_json(f, row)
            if self.echo:
                self.echo(f"    K={k} step {step}: memorized {row['frac_memorized']:.3f}, spurious "
                          f"{row['frac_spurious']:.3f}, generalized {row['frac_generalized']:.3f} "
                          f"({row['seconds']:.0f} s)")
        return {"K": k, "dynamics_s": time.perf_counter() - t}


# --- analysis -------------------------------------------------------------------------------------

def analyze(rows: list[dict], settings: DynamicsConfig = DynamicsConfig(), *, seed: int = 0) -> dict:
    """Per K: τ_mem (at ``level`` and 0.05), τ_gen, spurious onset; and the power-law fit of τ_mem."""
    per_k = []
    for k in sorted({r["K"] for r in rows}):
        rs = sorted((r for r in rows if r["K"] == k), key=lambda r: r["step"])
        steps = [r["step"] for r in rs]
        t_half, s_half = crossing(steps, [r["frac_memorized"] for r in rs], settings.level)
        t5, s5 = crossing(steps, [r["frac_memorized"] for r in rs], 0.05)
        held = [(r["heldout_loss"], r["step"]) for r in rs if r.get("heldout_loss") is not None]
        if rs[0].get("significant_spurious") is not None:  # against the null: the first significant excess
            onset = next((r["step"] for r in rs if r["significant_spurious"]), None)
        else:  # no held-out data (K = N): the first step at the threshold
            onset = next((r["step"] for r in rs if r["frac_spurious"] >= settings.spurious_onset), None)
        per_k.append({"K": k, "steps": steps, "tau_mem": t_half, "tau_mem_status": s_half, "tau_mem_05": t5,
                      "tau_mem_05_status": s5, "tau_gen": min(held)[1] if held else None,
                      "spurious_onset": onset, "max_spurious": max(r["frac_spurious"] for r in rs)})
    return {"per_K": per_k, "fit": fit_tau_mem(rows, level=settings.level, iterations=settings.fit_iterations,
                                                seed=seed),
            "fit_censored": fit_censored(censored_units(rows, level=settings.level))}


# --- the command ----------------------------------------------------------------------------------

def collect(run: Run, *, replicates: bool = False) -> list[dict]:
    """Every (K, step) record of a run's first models (``replicates``: of every model), sorted; a record
    of an earlier version without ``replicate`` is replicate 0's."""
    rows = []
    for p in run.points(replicate=None if replicates else 0):
        d = p.path / "dynamics"
        if d.is_dir():
            rows += [{"replicate": p.replicate, **read_json(f)} for f in d.glob("step-*.json")]
    return sorted(rows, key=lambda r: (r["K"], r["replicate"], r["step"]))


def model_table(rows: list[dict]) -> list[dict]:
    """Per (K, step), over the models that were measured there: the mean fractions with their t-intervals
    and the models' excesses over their own nulls in both forms, each with its t-interval and one-sided
    t-test (:func:`mem2gen.core.stats.model_interval`, :func:`mem2gen.core.stats.model_test`), Holm-corrected
    over the table's cells. The unit of inference is the model."""
    out = []
    for k, step in sorted({(r["K"], r["step"]) for r in rows}):
        group = [r for r in rows if r["K"] == k and r["step"] == step]
        row = {"K": k, "step": step, "n_models": len(group), "n_eval": group[0]["n_eval"],
               "n_synthetic": group[0]["n_synthetic"]}
        for name in (*LABELS, "spurious_nonmem"):
            vals = [r.get(f"frac_{name}") for r in group]
            if None in vals:
                row |= {f"frac_{name}": None, f"lo95_{name}": None, f"hi95_{name}": None}
                continue
            iv = model_interval(vals)
            row |= {f"frac_{name}": iv["mean"], f"sd_{name}": iv["sd"], f"lo95_{name}": iv["ci95"][0],
                    f"hi95_{name}": iv["ci95"][1]}
        for name in ("spurious", "spurious_nonmem"):
            exc = [r.get(f"excess_{name}") for r in group]
            if None in exc or len(exc) < 2:
                row |= {f"excess_{name}": None if None in exc else float(np.mean(exc)), f"p_{name}": None}
                continue
            iv = model_interval(exc, fraction=False)
            row |= {f"null_{name}": float(np.mean([r[f"null_{name}"] for r in group])), f"excess_{name}": iv["mean"],
                    f"excess_lo95_{name}": iv["ci95"][0], f"excess_hi95_{name}": iv["ci95"][1],
                    f"p_{name}": model_test(exc), f"significant_{name}": 0}
        out.append(row)
    return mark_significant(mark_significant(out), "spurious_nonmem")


def dynamics(run_dir, *, settings: DynamicsConfig = DynamicsConfig(), sizes=None, replicates: bool = False,
             executor: str = "local", devices: list | None = None, slurm: dict | None = None,
             device: str | None = None, overwrite: bool = False, echo=print) -> dict:
    """The ``mem2gen dynamics`` command: every (K, step) of a sweep's trained points (or of ``sizes``),
    resumable per (K, step); then dynamics.csv, dynamics.json, dynamics.png and the report's section.
    ``replicates``: every model of each K, not only the first (each against its own null), and
    dynamics-models.csv, the model-level table per (K, step) (:func:`model_table`)."""
    run = Run(run_dir)
    with run_lock(run.path, command="mem2gen dynamics"):
        return _dynamics(run, settings, sizes=sizes, replicates=replicates, executor=executor, devices=devices,
                         slurm=slurm, device=device, overwrite=overwrite, echo=echo)


def _dynamics(run: Run, settings: DynamicsConfig, *, sizes, replicates, executor, devices, slurm, device, overwrite,
              echo) -> dict:
    from ..models.networks import check_device, check_devices

    check_device(device)
    check_devices(devices)
    cfg = run.config
    check(cfg.model.kind != "optimal", f"{run.path}: the optimal denoiser is not trained; it has no dynamics")
    reps = range(run.replicates) if replicates else [0]
    points = [run.point(k, r) for k in sizes for r in reps] if sizes else \
        [p for p in run.points(replicate=None if replicates else 0)]
    points = [p for p in points if p.state in ("trained", "sampled", "classified")]
    check(points, f"{run.path}: no trained point yet; run the sweep first")
    check(any(len(snapshot_steps(p)) > 1 for p in points),
          f"{run.path}: its points kept no EMA snapshots (train.save_steps is empty), so there is one step per K; "
          "start a sweep with snapshots (the quick preset keeps five; or set train.save_steps)")
    f = run.path / "dynamics.json"
    measure = settings.measure()
    if f.exists() and read_json(f).get("settings", {}).get("measure") != measure:
        if not overwrite:
            raise Mem2genError(f"{run.path} holds dynamics measured with other settings "
                               f"({read_json(f)['settings'].get('measure')}); pass --overwrite to measure again")
        for p in run.points():
            shutil.rmtree(p.path / "dynamics", ignore_errors=True)
    write_json(f, {"settings": {"measure": measure, **dataclasses.asdict(settings)}, "status": "running"})
    ks = [p.key for p in points]
    ex = make_executor(executor, folder=run.path / "jobs" / "dynamics", devices=devices, slurm=slurm,
                       device=device or cfg.device, echo=echo)
    job = DynamicsJob(run.path, settings, device=device or cfg.device,
                      echo=echo if isinstance(ex, Sequential) else None)
    for _ in ex.map(job, ks):
        pass
    rows = collect(run, replicates=replicates)
    check(rows, f"{run.path}: nothing measured")
    nulls = {(p.k, p.replicate): dynamics_null(p, settings) for p in run.points()
             if (p.path / "dynamics" / layout.NULL).exists()}
    rows = with_null(rows, nulls, iterations=settings.bootstrap_iterations)
    # timings stay in the per-step records: the table depends on the results alone
    write_csv(run.path / "dynamics.csv", rows, fields=[k for k in rows[0] if k != "seconds"])
    first = [r for r in rows if r["replicate"] == 0]
    res = analyze(first, settings, seed=cfg.seed)
    if replicates:  # the model-level table, and τ_mem from every model of every size
        models = model_table(rows)
        write_csv(run.path / "dynamics-models.csv", models)
        res["fit_censored"] = fit_censored(censored_units(rows, level=settings.level))
        res["models"] = models
    write_json(f, {"settings": {"measure": measure, **dataclasses.asdict(settings)}, **res})
    dynamics_figure(first, res, run.path / "dynamics.png", title=f"{cfg.name}: {cfg.data}")
    if any(p.state == "classified" for p in run.points()):
        aggregate(run.path, echo=lambda *a: None)
    return {"rows": rows, **res}


def dynamics_figure(rows: list, analysis: dict, path, *, title: str = "") -> None:
    """The (K, training step) map: one panel per class (colour = fraction; white line: τ_mem(K)), and
    τ_mem(K), τ_gen(K), the spurious onset with the power-law fit."""
    plt = pyplot()

    ks = sorted({r["K"] for r in rows})
    steps = sorted({r["step"] for r in rows})
    grid = {name: np.full((len(steps), len(ks)), np.nan) for name in LABELS}
    for r in rows:
        for name in LABELS:
            grid[name][steps.index(r["step"]), ks.index(r["K"])] = r[f"frac_{name}"]
    per_k = analysis["per_K"]
    tau = [(d["K"], d["tau_mem"]) for d in per_k if d["tau_mem_status"] == "ok"]
    fig, axes = plt.subplots(2, 2, figsize=(9.6, 7.2))
    xe, ye = log_edges(ks), log_edges(steps)
    for ax, name in zip(axes.flat, LABELS):
        vmax = 1.0 if name != "spurious" else max(0.05, float(np.nanmax(grid[name])))
        im = ax.pcolormesh(xe, ye, np.ma.masked_invalid(grid[name]), cmap="magma", vmin=0, vmax=vmax, shading="flat")
        fig.colorbar(im, ax=ax, fraction=0.046)
        if tau:
            ax.plot(*zip(*tau), "o-", color="w", ms=4, lw=1.2, label="τ_mem (memorized = ½)")
        ax.set(xscale="log", yscale="log", xlabel="training-set size K", ylabel="training step", title=name)
        sig = [(r["K"], r["step"]) for r in rows if r.get("significant_spurious")]
        if name == "spurious" and sig:
            ax.plot(*zip(*sig), "+", color="c", ms=7, mew=1.5, label="above the null (95%)")
            ax.legend(fontsize=7, loc="lower right")
        noise = [(r["K"], r["step"]) for r in rows if (r.get("generalized_off_manifold") or 0) > 0.5
                 and r["frac_generalized"] >= 0.1]
        if name == "generalized" and noise:
            ax.plot(*zip(*noise), "x", color="c", ms=6, mew=1.5, label="most of them off-manifold")
            ax.legend(fontsize=7, loc="lower right")
        if name == "memorized" and tau:
            ax.legend(fontsize=7, loc="lower right")
    ax = axes.flat[3]
    for key, status, style, label in (("tau_mem", "tau_mem_status", "o", "τ_mem (½)"),
                                      ("tau_mem_05", "tau_mem_05_status", "s", "memorized reaches 5%")):
        pts = [(d["K"], d[key]) for d in per_k if d[status] == "ok"]
        if pts:
            ax.plot(*zip(*pts), style, color=COLORS["memorized"], mfc="none" if style == "s" else None, label=label)
    gen = [(d["K"], d["tau_gen"]) for d in per_k if d["tau_gen"] is not None]
    if gen:
        ax.plot(*zip(*gen), "x", color=COLORS["generalized"], ms=8, label="τ_gen (lowest held-out loss)")
    onset = [(d["K"], d["spurious_onset"]) for d in per_k if d["spurious_onset"] is not None]
    if onset:
        ax.plot(*zip(*onset), "^", color=COLORS["spurious"], label="spurious onset")
    fit = analysis["fit"]
    if fit["a"] is not None:
        kk = np.geomspace(min(fit["K"]), max(fit["K"]), 50)
        ci = "" if not fit.get("ci95") else f" [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}]"
        ax.plot(kk, np.exp(fit["c"]) * kk ** fit["a"], "-", color="0.3", lw=1, label=f"τ_mem ∝ K^{fit['a']:.2f}{ci}")
    cen = analysis.get("fit_censored") or {}
    if cen.get("a") is not None:
        kk = np.geomspace(min(ks), max(ks), 50)
        ax.plot(kk, np.exp(cen["c"]) * kk ** cen["a"], "--", color="0.1", lw=1,
                label=f"every size, censored: K^{cen['a']:.2f}")
    ax.set(xscale="log", yscale="log", xlabel="training-set size K", ylabel="training step",
           xlim=(xe[0], xe[-1]), ylim=(ye[0], ye[-1]), title="times")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, which="both")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)
