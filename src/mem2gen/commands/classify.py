"""``mem2gen classify`` and ``mem2gen demo``: label a set of samples memorized / spurious / generalized
(paper eqs 4-6) and write labels.csv, summary.json and neighbors.png."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import click

from ..core.evaluate import caveats, evaluate, rescaled
from ..core.null import TESTED, share
from ..core.planted import planted
from ..core.rule import Rule, duplicate_warning
from ..errors import check
from ..io import datasets, layout
from ..io.config import RULES
from ..io.data import load_array, parse_path_key
from ..io.files import prepare_out_dir, run_lock, save_npy, sha256_of, staged_dir
from .options import Ratio, calls, lib_option, print_table


@dataclass
class Classified:
    """What :func:`classify_files` and :func:`planted_demo` return."""

    result: object  # the Classification
    bootstrap: dict
    files: list
    seconds: float
    agreement: float | None = None  # planted demo only
    checks: dict | None = None  # classify_files: off-manifold fractions and FD/KID against S


def classify_files(eval_path, train_path, synthetic_path=None, *, out, dataset: str | None = None,
                   distance: str | None = None, delta_m: float | None = None, delta_s: float | None = None,
                   rule: str = "ratio", features_metric: str = "l2", lpips_net: str = "alex", lpips_backbone=None,
                   lpips_lin=None, k: int = 5, iterations: int = 10_000, seed: int = 0, device: str | None = None,
                   protocol: str = "paper", pixel_range: str = "auto", grid: bool = True, checks: bool = True,
                   quality: bool | None = None, held_out=None, overwrite: bool = False, progress: bool = True,
                   before_write=None) -> Classified:
    """Classify the samples in ``eval_path`` against ``train_path`` (S) and ``synthetic_path`` (S'; omit
    it to use the eval set with leave-one-out) and write labels.csv, summary.json and neighbors.png
    into ``out`` (see :func:`mem2gen.core.rule.classify` for the settings). With ``checks`` (images
    only), also whether each sample is off-manifold (against S, leave-one-out, the threshold from up to
    5,000 of S's items: labels.csv, summary.json); ``quality``: the set's FD and KID against up to 2,000 real
    items (S and ``held_out``) in features of a network trained on them at run time (:mod:`mem2gen.core.quality`;
    a training run, ~1 min at MNIST's size on one core); it needs 500 real items (True with fewer: refused);
    None (the default): scored when there are that many. The caveats on the samples' quality
    (:func:`mem2gen.core.evaluate.caveats`) are printed beside the fractions and kept in summary.json. With
    ``held_out`` (real items outside S, a file like the others), the rule's null: those items labelled in
    place of the samples at the same |S_eval| and |S'|, and the excess of each fraction over it with its
    interval and exact p-value (:func:`mem2gen.core.null.held_out_null`; one model: within its samples).
    ``before_write``: called with the :class:`Classified` (no files yet) before the outputs and the
    neighbour grid are written, so a caller can show the numbers first.

    ``protocol="released"`` is the authors' released evaluation in full: the absolute comparison
    (``rule="absolute"``) with one generated set as both S_eval and S' (each sample's own match
    dropped), so no ``synthetic_path``; the distance their README's commands use, LPIPS (AlexNet), unless
    ``distance`` is given; images smaller than 32×32 resized up to 32 (nearest-exact) before LPIPS, as
    their code does. Their l2 path's ranking (by 1/(d + 1e-8) ascending, i.e. the farthest items) is not
    reproduced: neighbours here are always the nearest."""
    check(protocol in ("paper", "released"), f"protocol {protocol!r}: use paper or released")
    if protocol == "released":
        check(synthetic_path is None, "the released protocol uses the evaluation set as S' too: omit --synthetic")
        check(rule in ("ratio", "absolute"), f"unknown rule {rule!r}")
        rule = "absolute"
        distance = distance or "lpips"
    the_rule = Rule.of(dataset=dataset, distance=distance, delta_m=delta_m, delta_s=delta_s, kind=rule)
    check(iterations >= 1, "bootstrap iterations must be at least 1")
    check(seed >= 0 and k >= 2, "the seed must be >= 0 and k >= 2")
    paths = {"eval": eval_path, "train": train_path} | ({"synthetic": synthetic_path} if synthetic_path else {}) | (
        {"held_out": held_out} if held_out else {})
    input_files = [parse_path_key(spec)[0] for spec in paths.values()]
    prepare_out_dir(out, overwrite=overwrite, inputs=input_files,
                    names=(layout.LABELS_CSV, layout.SUMMARY, layout.GRID))
    arrays = {name: load_array(spec) for name, spec in paths.items()}
    ev = evaluate(arrays["eval"], arrays["train"], arrays.get("synthetic"), rule=the_rule,
                  held_out=arrays.get("held_out"), off_manifold=checks, quality=quality, iterations=iterations,
                  seed=seed, pixel_range=pixel_range, device=device, progress=progress, k=k,
                  features_metric=features_metric, lpips_net=lpips_net, lpips_backbone=lpips_backbone,
                  lpips_lin=lpips_lin, lpips_resize=32 if protocol == "released" else None,
                  self_check=5000 if checks else 2000)
    extra = {"inputs": {n: {"path": str(s), "sha256": sha256_of(parse_path_key(s)[0])} for n, s in paths.items()},
             "protocol": protocol, "bootstrap_iterations": iterations, "bootstrap_seed": seed,
             "seconds": round(ev.seconds, 3), "caveats": caveats(ev.checks())}
    if before_write:
        before_write(Classified(ev.classification, ev.bootstrap, [], ev.seconds, checks=ev.checks()))
    e, tr = rescaled(arrays["eval"], pixel_range), rescaled(arrays["train"], pixel_range)
    syn = rescaled(arrays["synthetic"], pixel_range) if synthetic_path else None
    with run_lock(Path(out).resolve().parent, command="mem2gen classify", name=Path(out).name + ".lock"), \
            staged_dir(out, overwrite=overwrite, inputs=input_files) as stage:  # feature vectors: no grid
        files = ev.write(stage, e, tr, syn, extra=extra, grid=grid and the_rule.distance != "features")
    return Classified(ev.classification, ev.bootstrap, files, ev.seconds, checks=ev.checks())


def planted_demo(*, out="runs/demo", overwrite: bool = False) -> Classified:
    """Classify a built-in planted example (digits) whose right labels are known by construction,
    writing the three sets beside the classification so that ``mem2gen classify`` can be tried on them."""
    prepare_out_dir(out, overwrite=overwrite, names=("eval.npy", "train.npy", "synthetic.npy", layout.LABELS_CSV,
                                                     layout.SUMMARY, layout.GRID))
    ev, tr, syn, truth = planted()
    res = evaluate(ev, tr, syn)
    agreement = float((res.classification.labels == truth).mean())
    with staged_dir(out, overwrite=overwrite) as stage:
        for name, a in (("eval", ev), ("train", tr), ("synthetic", syn)):
            save_npy(stage / f"{name}.npy", a)
        files = res.write(stage, ev, tr, syn, extra={"planted_truth_agreement": agreement})
    return Classified(res.classification, res.bootstrap, files, 0.0, agreement)


@click.command("classify")
@calls(classify_files)
@click.option("--train", "train_path", required=True, help="Training set S: .npy, .npz[:KEY] or an image folder.")
@click.option("--synthetic", "synthetic_path", default=None,
              help="Synthetic set S' (|S'| >> |S|). Omit to use the eval set as S' with leave-one-out.")
@click.option("--eval", "eval_path", required=True, help="Evaluation set S_eval (samples to label).")
@lib_option(classify_files, "dataset", "--dataset", type=click.Choice(list(datasets.DATASETS)),
            help="Take the paper's distance and delta_s for this dataset.")
@lib_option(classify_files, "distance", "--distance", type=click.Choice(["l2", "lpips", "features"]),
            help="l2 on pixels, LPIPS, or user-supplied feature vectors. [default: the dataset's, else l2]")
@lib_option(classify_files, "delta_m", "--delta-m", type=Ratio(),
            help="Memorization threshold (eq 4). [default: 1/3; 0.03 with --rule absolute]")
@lib_option(classify_files, "delta_s", "--delta-s", type=Ratio(),
            help="Spurious threshold (eq 5). [default: the dataset's, else 0.28; 0.02 with --rule absolute]")
@lib_option(classify_files, "rule", "--rule", type=click.Choice(RULES),
            help="ratio: the paper's eqs 4-5. absolute: raw d(x,x1) <= delta_m and d(x,x'1) <= delta_s, "
                 "the comparison of the authors' released code (README: what it does and does not reproduce).")
@lib_option(classify_files, "protocol", "--protocol", type=click.Choice(["paper", "released"]),
            help="released: the authors' released evaluation in full (rule absolute, the eval set as S' with "
                 "self-matches dropped, no --synthetic; LPIPS-alex unless --distance, images under 32x32 resized "
                 "to 32 nearest-exact, as their README's commands and code).")
@lib_option(classify_files, "pixel_range", "--range", type=click.Choice(["auto", "-1,1", "0,1"]),
            help="Range of float pixels: auto reads [-1, 1] and refuses sets that look like [0, 1]; 0,1 rescales.")
@lib_option(classify_files, "features_metric", "--features-metric", type=click.Choice(["l2", "cosine"]))
@lib_option(classify_files, "lpips_net", "--lpips-net", type=click.Choice(["alex", "vgg"]))
@lib_option(classify_files, "lpips_backbone", "--lpips-backbone",
            help="torchvision state dict of the backbone (.pth/.safetensors).")
@lib_option(classify_files, "lpips_lin", "--lpips-lin",
            help="LPIPS linear weights. [default: those shipped with lpips]")
@lib_option(classify_files, "k", "--k", type=int, help="Neighbours kept per set (>= 2).")
@lib_option(classify_files, "iterations", "--iterations", type=int, help="Bootstrap iterations.")
@lib_option(classify_files, "seed", "--seed", type=int, help="Bootstrap seed.")
@lib_option(classify_files, "device", "--device", help="cpu or cuda. [default: cuda when present]")
@lib_option(classify_files, "grid", "--grid/--no-grid", help="Draw neighbors.png.")
@lib_option(classify_files, "checks", "--checks/--no-checks",
            help="Images: also flag samples farther from S than 99% of S's items are from each other (off-manifold).")
@lib_option(classify_files, "quality", "--quality/--no-quality",
            help="Images: score FD/KID against real items (S and --held-out) in features of a network trained on "
                 "them now (~1 min at MNIST's size on one core); needs 500 real items. [default: when there are]")
@lib_option(classify_files, "held_out", "--held-out",
            help="Real items outside S (a file like the others): the rule's null at the same |S_eval| and |S'|, and "
                 "each fraction's excess over it with an exact p-value (within this one model).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
@lib_option(classify_files, "overwrite", "--overwrite", is_flag=True,
            help="Write into an --out folder that holds files, replacing mem2gen's own earlier outputs there "
                 "(nothing else).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def classify_cmd(quiet, **kw):
    """Label each evaluation sample memorized / spurious / generalized (paper eqs 4-6)."""
    with warnings.catch_warnings():  # said below in one line
        warnings.simplefilter("ignore")
        r = classify_files(**kw, progress=not quiet, before_write=show_classified)
    click.echo(f"wrote {kw['out']}/: " + ", ".join(r.files))


def show_classified(r: Classified) -> None:
    """The command's summary of one classification: notes, the fractions' table and the checks."""
    res = r.result
    if res.info.get("shared_with_synthetic"):
        click.echo(f"note: {res.info['shared_with_synthetic']} evaluation samples have an exact copy in S' (the same "
                   "samples in both sets, e.g. the same seed); each one's own copy was left out", err=True)
    dup = res.info.get("near_duplicates")
    if dup and dup["near"]:
        click.echo(f"warning: {duplicate_warning(dup)}", err=True)
    click.echo(f"{len(res.labels)} samples vs {res.info['n_train']} training and {res.info['n_synthetic']} "
               f"synthetic ({res.distance}, rule {res.rule}, delta_m={res.delta_m:.4g}, delta_s={res.delta_s:.4g}) "
               f"in {r.seconds:.1f} s")
    print_table(res, r.bootstrap)
    if r.checks and "off_manifold" in r.checks:
        o = r.checks["off_manifold"]
        gen = "-" if o["generalized"] is None else f"{o['generalized']:.1%}"
        click.echo(f"off-manifold (farther from S than 99% of S's items are from each other): {o['fraction']:.1%} "
                   f"of all, {gen} of the generalized")
    if r.checks and "fd" in r.checks.get("quality", {}):
        q = r.checks["quality"]
        click.echo(f"quality against {q['reference']} (features of a network trained on them; lower is better; not "
                   f"Inception FID): FD {q['fd']:.3g} (real items against real items, same sizes: {q['real_fd']:.3g}), "
                   f"KID {q['kid']:.3g} ± {q['kid_std']:.2g}")
    for line in caveats(r.checks):
        click.echo(f"caveat: {line}", err=True)
    if r.checks and "null" in r.checks:
        n = r.checks["null"]
        click.echo(f"null (held-out real data labelled in place of the samples; |S_eval| = {n['n_eval']}, "
                   f"|S'| = {n['n_synthetic']}):")
        for name in TESTED:
            e, at, base = n["excess"][name], share(n["model_counts"], name), share(n["counts"], name)
            title = "spurious | not memorized" if name == "spurious_nonmem" else name
            if e["excess"] is None:
                click.echo(f"  {title:<24} undefined: {e['undefined']}")
                continue
            click.echo(f"  {title:<24} model {at:.4f} (at the null's |S'|), null {base:.4f}, excess "
                       f"{e['excess']:+.4f} [{e['ci95'][0]:+.4f}, {e['ci95'][1]:+.4f}], one-sided exact p = "
                       f"{e['p']:.3g}")
        click.echo("  (spurious | not memorized: eq 5 counts only non-memorized samples, and real held-out items are "
                   "rarely memorized; both forms are needed to read the spurious excess)")
        click.echo("  (a test over this one model's samples: another training seed may differ more than this)")


@click.command()
@calls(planted_demo)
@lib_option(planted_demo, "out", "--out", type=click.Path(path_type=Path))
@lib_option(planted_demo, "overwrite", "--overwrite", is_flag=True)
def demo(out, overwrite):
    """Classify a built-in planted example (digits) whose right labels are known."""
    r = planted_demo(out=out, overwrite=overwrite)
    click.echo(f"planted example: {len(r.result.labels)} eval samples of 8x8 digits")
    print_table(r.result, r.bootstrap)
    click.echo(f"agreement with the planted truth: {r.agreement:.1%}")
    click.echo(f"wrote {out}/ ({', '.join(r.files)}); try: mem2gen classify --train {out}/train.npy "
               f"--synthetic {out}/synthetic.npy --eval {out}/eval.npy --out {out}/again")


COMMANDS = [classify_cmd, demo]
