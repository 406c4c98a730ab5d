"""A hostile batch: commands a careful but unlucky user might type, each run as a process from the shell and
judged by what it did, not by what it printed alone.

    python scripts/hostile.py WORKDIR [docs/tables]     # about 10 minutes on two cores

Each case names what should happen: "refuse" (exit 2, one line starting "mem2gen: error:") or "ok" (exit 0,
and its own check of the result). Around every case, files the user owns (sentinels) are fingerprinted.
Outcomes: clean (as expected), silent (ran where it should have refused, or its check failed), lost (a file
the user owns changed or vanished), internal (an internal error, a traceback or another exit code), hang
(past the time limit), refused (refused where it should have run). Writes WORKDIR/hostile.csv (one row per
case) and, given a tables folder, hostile-summary.csv there; exits 1 unless every case is clean.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent / "mem2gen"
LIMIT_S = 120


def fingerprint(paths) -> dict:
    out = {}
    for p in paths:
        p = Path(p)
        files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else []
        out[str(p)] = [(str(f), hashlib.sha256(f.read_bytes()).hexdigest()) for f in files] if p.exists() else None
    return out


def run(args, *, cwd, env=None, limit=LIMIT_S):
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    t = time.perf_counter()
    try:
        p = subprocess.run([str(BIN), *map(str, args)], cwd=cwd, env=e, capture_output=True, text=True,
                           timeout=limit)
    except subprocess.TimeoutExpired:
        return None, "", "", time.perf_counter() - t
    return p.returncode, p.stdout, p.stderr, time.perf_counter() - t


def judge(case, rc, out, err, before, after) -> str:
    if rc is None:
        return "hang"
    if before != after:
        return "lost"
    if rc not in (0, 1, 2) or "internal error" in err or "Traceback" in err:
        return "internal"
    if case["expect"] == "detect":  # status --verify: exit 1 (inconsistent) or 2 (unreadable), never "consistent"
        return "silent" if rc == 0 else "clean"
    if rc not in (0, 2) or "internal error" in err or "Traceback" in err:
        return "internal"
    if case["expect"] == "refuse":
        if rc == 0:
            return "silent"
        lines = [x for x in err.strip().splitlines() if x.strip()]
        return "clean" if lines and lines[-1].startswith("mem2gen: error:") else "internal"
    if rc == 2:
        return "refused"
    return "clean" if case.get("check") is None or case["check"]() else "silent"


# --- fixtures ------------------------------------------------------------------------------------------

def fixtures(w: Path) -> dict:
    from mem2gen.io.datasets import load_dataset

    if (w / "fixtures.done").exists():  # made by an earlier start of the batch
        return {"w": w}
    w.mkdir(parents=True, exist_ok=False)
    d = load_dataset("digits")
    order = np.random.default_rng(0).permutation(len(d))
    np.save(w / "train.npy", d[order[:32]])
    np.save(w / "held.npy", d[order[32:600]])
    np.save(w / "eval.npy", d[order[600:700]])
    np.save(w / "syn.npy", d[order[700:1000]])
    np.save(w / "eval01.npy", (d[order[600:700]] + 1) / 2)  # [0, 1] floats
    np.save(w / "shape6.npy", np.zeros((50, 1, 6, 6), np.float32))
    nan = np.asarray(d[order[600:700]]).copy()
    nan[3, 0, 0, 0] = np.nan
    np.save(w / "nan.npy", nan)
    np.save(w / "empty.npy", np.zeros((0, 1, 8, 8), np.float32))
    np.savez(w / "pickled.npz", samples=np.array([object()], dtype=object))
    (w / "mine.txt").write_text("the user's own file\n")
    cfg = {"preset": "quick", "sizes": [2, 8], "n_eval": 30, "sample_steps": 4, "sampler": "ddim",
           "bootstrap_iterations": 50, "quality_check": False, "train": {"steps": 12, "batch": 16}}
    (w / "tiny.yaml").write_text(json.dumps(cfg))
    rc, _, err, _ = run(["sweep", "--config", w / "tiny.yaml", "--out", w / "run", "--quiet"], cwd=w, limit=900)
    assert rc == 0, err
    cfg2 = {**cfg, "replicates": 2}
    (w / "tiny2.yaml").write_text(json.dumps(cfg2))
    rc, _, err, _ = run(["sweep", "--config", w / "tiny2.yaml", "--out", w / "rep", "--quiet"], cwd=w, limit=900)
    assert rc == 0, err
    rc, _, err, _ = run(["train", "--data", "digits", "--size", "8", "--steps", "5", "--batch", "8", "--out",
                         w / "m", "--quiet"], cwd=w)
    assert rc == 0, err
    (w / "fixtures.done").write_text("")
    return {"w": w}


def copy_run(w: Path, name: str) -> Path:
    dst = w / "cases" / name
    shutil.copytree(w / "run", dst, symlinks=True)
    return dst


# --- the cases -----------------------------------------------------------------------------------------

def cases(w: Path) -> list[dict]:
    out = []
    (w / "cases").mkdir(exist_ok=True)

    def add(name, args, expect="refuse", sentinels=(), setup=None, check=None, env=None):
        out.append({"name": name, "args": args, "expect": expect, "sentinels": list(sentinels), "setup": setup,
                    "check": check, "env": env})

    # 1. settings by meaning, from a config file (one class: a value that is out of its meaning)
    bad_settings = {
        "grad_clip_negative": {"train": {"grad_clip": -1}}, "lr_negative": {"train": {"lr": -1e-3}},
        "lr_zero": {"train": {"lr": 0}}, "ema_above_one": {"train": {"ema_decay": 1.5}},
        "ema_negative": {"train": {"ema_decay": -0.1}}, "steps_zero": {"train": {"steps": 0}},
        "steps_negative": {"train": {"steps": -5}}, "batch_zero": {"train": {"batch": 0}},
        "batch_fraction": {"train": {"batch": 2.5}}, "weight_decay_negative": {"train": {"weight_decay": -1}},
        "data_noise_negative": {"train": {"data_noise": -0.1}}, "n_eval_zero": {"n_eval": 0},
        "synthetic_factor_zero": {"synthetic_factor": 0}, "sample_steps_zero": {"sample_steps": 0},
        "sample_steps_past_T": {"sample_steps": 5000}, "eta_above_one": {"eta": 2},
        "delta_m_zero": {"delta_m": 0}, "delta_m_above_one": {"delta_m": 1.5}, "delta_s_above_half": {"delta_s": 0.9},
        "capacity_tol_zero": {"capacity_tol": 0}, "bootstrap_zero": {"bootstrap_iterations": 0},
        "sizes_empty": {"sizes": []}, "sizes_one": {"sizes": [1]}, "sizes_text": {"sizes": ["a"]},
        "replicates_zero": {"replicates": 0}, "dropout_above_one": {"model": {"dropout": 1.5}},
        "width_zero": {"model": {"width": 0}}, "sampler_unknown": {"sampler": "euler"},
        "split_unknown": {"split": "weird"}, "name_with_slash": {"name": "../x"}, "data_unknown": {"data": "nope"},
        "unknown_key": {"trian": {"steps": 3}}, "train_as_list": {"train": [1, 2]},
        "preset_list": {"preset": ["quick"]},
        "seed_negative": {"seed": -1}, "seed_fraction": {"seed": 2.5}, "checkpoint_every_zero":
            {"train": {"checkpoint_every": 0}},
    }
    for name, d in bad_settings.items():
        f = w / "cfg" / f"{name}.yaml"
        f.parent.mkdir(exist_ok=True)
        f.write_text(json.dumps(d))
        add(f"setting:{name}", ["sweep", "--config", f, "--out", w / "cases" / f"cfg-{name}", "--quiet"],
            check=None)
    # 2. command-line values
    run_dir = w / "run"
    for name, args in {
        "sweep_sizes_text": ["sweep", "--sizes", "a,b"], "sweep_sizes_zero": ["sweep", "--sizes", "0,8"],
        "sweep_steps_negative": ["sweep", "--steps", "-1", "--sizes", "2"],
        "sweep_devices_empty": ["sweep", "--devices", ",", "--sizes", "2"],
        "sweep_devices_hundreds": ["sweep", "--devices", ",".join(["cpu"] * 500), "--sizes", "2"],
        "sweep_devices_unknown": ["sweep", "--devices", "tpu:0", "--sizes", "2"],
        "threads_zero": ["--threads", "0", "status", run_dir],
        "threads_huge": ["--threads", "100000", "status", run_dir],
        "sweep_timeout_zero": ["sweep", "--executor", "slurm", "--timeout-min", "0"],
        "sweep_mem_negative": ["sweep", "--executor", "slurm", "--mem-gb", "-1"],
        "sweep_sbatch_bad": ["sweep", "--executor", "slurm", "--sbatch", "a b"],
        "plan_gpu_unknown": ["sweep", "--plan-gpu", "TPU9", "--sizes", "2"],
        "sample_n_zero": ["sample", "--model", w / "m" / "model", "--n", "0", "--out", w / "cases" / "s0.npy"],
        "sample_n_negative": ["sample", "--model", w / "m" / "model", "--n", "-3", "--out", w / "cases" / "s1.npy"],
        "sample_steps_zero": ["sample", "--model", w / "m" / "model", "--n", "2", "--steps", "0",
                              "--out", w / "cases" / "s2.npy"],
        "sample_eta_three": ["sample", "--model", w / "m" / "model", "--n", "2", "--eta", "3",
                             "--out", w / "cases" / "s3.npy"],
        "sample_out_txt": ["sample", "--model", w / "m" / "model", "--n", "2", "--out", w / "cases" / "s.txt"],
        "sample_model_missing": ["sample", "--model", w / "nope", "--n", "2", "--out", w / "cases" / "s4.npy"],
        "train_size_zero": ["train", "--data", "digits", "--size", "0", "--out", w / "cases" / "t0"],
        "train_size_huge": ["train", "--data", "digits", "--size", "1000000000", "--out", w / "cases" / "t1"],
        "train_batch_zero": ["train", "--data", "digits", "--size", "4", "--batch", "0", "--out", w / "cases" / "t2"],
        "train_lr_negative": ["train", "--data", "digits", "--size", "4", "--lr", "-1", "--out", w / "cases" / "t3"],
        "classify_missing": ["classify", "--train", w / "nope.npy", "--eval", w / "eval.npy",
                             "--out", w / "cases" / "c0"],
        "classify_range_bad": ["classify", "--train", w / "train.npy", "--eval", w / "eval.npy", "--range", "2,3",
                               "--out", w / "cases" / "c1"],
        "classify_delta_m_two": ["classify", "--train", w / "train.npy", "--eval", w / "eval.npy", "--delta-m", "2",
                                 "--out", w / "cases" / "c2"],
        "classify_k_one": ["classify", "--train", w / "train.npy", "--eval", w / "eval.npy", "--k", "1",
                           "--out", w / "cases" / "c3"],
        "classify_iterations_zero": ["classify", "--train", w / "train.npy", "--eval", w / "eval.npy",
                                     "--iterations", "0", "--out", w / "cases" / "c4"],
        "landscape_size_absent": ["landscape", run_dir, "--sizes", "5"],
        "status_missing_run": ["status", w / "nope"],
        "report_missing_run": ["report", w / "nope"],
        "out_name_too_long": ["train", "--data", "digits", "--size", "4", "--out", w / "cases" / ("x" * 240)],
    }.items():
        add(f"cli:{name}", args)
    for name, env in {"omp_superscript": {"OMP_NUM_THREADS": "²"}, "omp_zero": {"OMP_NUM_THREADS": "0"},
                      "mem2gen_threads_text": {"MEM2GEN_THREADS": "abc"},
                      "mem2gen_threads_huge": {"MEM2GEN_THREADS": "100000"}}.items():
        add(f"env:{name}", ["status", run_dir], env=env)
    # 3. inputs that contradict themselves or each other
    base = ["classify", "--train", w / "train.npy", "--synthetic", w / "syn.npy", "--quiet"]
    for name, args in {
        "held_out_is_train": [*base, "--eval", w / "eval.npy", "--held-out", w / "train.npy"],
        "eval_other_shape": [*base, "--eval", w / "shape6.npy"],
        "eval_zero_one": [*base, "--eval", w / "eval01.npy"],
        "eval_nan": [*base, "--eval", w / "nan.npy"],
        "eval_empty": [*base, "--eval", w / "empty.npy"],
        "eval_pickled": [*base, "--eval", w / "pickled.npz"],
        "held_out_other_shape": [*base, "--eval", w / "eval.npy", "--held-out", w / "shape6.npy"],
        "quality_too_few_real": [*base, "--eval", w / "eval.npy", "--quality"],
        "train_one_item": ["classify", "--train", w / "one.npy", "--eval", w / "eval.npy"],
        "samples_without_checkpoints": ["sweep", "--samples", w / "sets", "--sizes", "2"],
    }.items():
        add(f"input:{name}", [*args, "--out", w / "cases" / f"in-{name}"])
    np.save(w / "one.npy", np.load(w / "train.npy")[:1])
    half = np.concatenate([np.load(w / "train.npy")[:16], np.load(w / "held.npy")[:300]])
    np.save(w / "half.npy", half)
    add("input:held_out_half_train", [*base, "--eval", w / "eval.npy", "--held-out", w / "half.npy",
                                      "--out", w / "cases" / "in-half"])
    # 4. records edited, removed, reshaped or copied (on copies of the tiny run)
    def edit(name, fn, args_of, expect="refuse", check=None):
        path = w / "cases" / name

        def setup():
            copy_run(w, name)
            fn(path)
        add(f"record:{name}", args_of(path), expect=expect, setup=setup, check=check)

    def write(rel, text):
        return lambda p: (p / rel).write_text(text)

    verify = lambda p: ["status", p, "--verify"]  # noqa: E731

    def detect(name, fn):
        edit(name, fn, verify, expect="detect")
    resume = lambda p: ["sweep", "--config", w / "tiny.yaml", "--out", p, "--quiet"]  # noqa: E731
    detect("summary_list", write("points/K=8/summary.json", "[]"))
    detect("summary_string", write("points/K=8/summary.json", '"x"'))
    detect("summary_deep", write("points/K=8/summary.json", "[" * 200000 + "]" * 200000))
    detect("digests_list", write("points/K=8/digests.json", "[1, 2]"))
    detect("digests_gone_labels_edited", lambda p: ((p / "points/K=8/digests.json").unlink(),
                                                    (p / "points/K=8/labels.csv").write_text("label\n0\n")))
    detect("labels_edited", lambda p: (p / "points/K=8/labels.csv").write_text(
        (p / "points/K=8/labels.csv").read_text().replace(",memorized,", ",generalized,", 3)))
    edit("manifest_garbage", write("manifest.json", "{not json"), resume, expect="ok")
    edit("config_garbage", write("config.json", "{not json"), resume)
    detect("point_copied_from_other", lambda p: (shutil.rmtree(p / "points/K=8"),
                                                  shutil.copytree(p / "points/K=2", p / "points/K=8")))
    detect("eval_truncated", lambda p: (p / "points/K=8/eval.npy").write_bytes(
        (p / "points/K=8/eval.npy").read_bytes()[:200]))
    detect("weights_truncated", lambda p: (p / "points/K=8/model/model.safetensors").write_bytes(b"\0" * 100))
    edit("attractors_list", write("points/K=8/attractors.json", "[]"),
         lambda p: ["attractors", p, "--sizes", "8", "--ts", "5", "--per-group", "2", "--n-synthetic", "0",
                    "--trials", "1", "--steps", "2", "--quiet"])  # a record it cannot read: refused and kept
    edit("resume_after_all_good", lambda p: None, resume, expect="ok",
         check=lambda: (w / "cases" / "resume_after_all_good" / "results.csv").exists())
    edit("landscape_on_copy", lambda p: None, lambda p: ["landscape", p, "--sizes", "8", "--n-samples", "4",
                                                         "--trials", "1", "--steps", "2", "--quiet"], expect="ok")
    # 5. pooling: the same evidence twice, mixed settings, no K column
    pool = w / "cases" / "pool"
    for name, args in {
        "same_run_twice": ["pool", w / "rep", w / "rep"],
        "run_and_its_table": ["pool", w / "rep", w / "rep" / "points.csv"],
        "other_settings": ["pool", w / "rep", w / "run"],
        "no_k_column": ["pool", w / "nok.csv", w / "nok2.csv"],
        "one_model": ["pool", w / "run"],
    }.items():
        add(f"pool:{name}", [*args, "--out", pool / f"{name}.csv"])
    (w / "nok.csv").write_text("x,y\n1,2\n")
    (w / "nok2.csv").write_text("x,y\n1,2\n")
    add("pool:replicated_run", ["pool", w / "rep", "--out", pool / "ok.csv"], expect="ok",
        check=lambda: (pool / "ok.csv").exists())
    # 6. what the user owns is never replaced or removed
    user = w / "cases" / "user"

    def user_folder(name, files=("mine.txt",)):
        d = user / name

        def setup():
            d.mkdir(parents=True)
            for f in files:
                (d / f).write_text("the user's own file\n")
        return d, setup

    d, s = user_folder("classify_into_users")
    add("lost:classify_into_folder_with_user_files", [*base, "--eval", w / "eval.npy", "--out", d], setup=s,
        sentinels=[d / "mine.txt"])
    d2, s2 = user_folder("classify_overwrite_users", files=("mine.txt", "labels.csv"))
    add("lost:classify_overwrite_user_labels", [*base, "--eval", w / "eval.npy", "--out", d2, "--overwrite"],
        setup=s2, sentinels=[d2 / "mine.txt", d2 / "labels.csv"])
    d3, s3 = user_folder("sweep_into_users")
    add("lost:sweep_into_folder_with_user_files", ["sweep", "--config", w / "tiny.yaml", "--out", d3], setup=s3,
        sentinels=[d3 / "mine.txt"])
    d4, s4 = user_folder("train_into_users")
    add("lost:train_into_folder_with_user_files", ["train", "--data", "digits", "--size", "4", "--steps", "1",
                                                   "--out", d4], setup=s4, sentinels=[d4 / "mine.txt"])
    outside = user / "outside"

    def symlinked_points():
        copy_run(w, "symlinked")
        outside.mkdir(parents=True)
        (outside / "mine.txt").write_text("the user's own file\n")
        shutil.rmtree(w / "cases" / "symlinked" / "points")
        (w / "cases" / "symlinked" / "points").symlink_to(outside)
    other = w / "cases" / "other.yaml"
    other.write_text(json.dumps({"preset": "quick", "sizes": [2], "n_eval": 20, "sample_steps": 3, "sampler": "ddim",
                                 "bootstrap_iterations": 20, "quality_check": False, "train": {"steps": 6}}))
    add("lost:sweep_overwrite_symlinked_points", ["sweep", "--config", other, "--out", w / "cases" / "symlinked",
                                                  "--overwrite", "--quiet"], expect="ok", setup=symlinked_points,
        sentinels=[outside / "mine.txt"])
    f5 = user / "a_file"
    add("lost:out_is_a_file", ["sweep", "--config", w / "tiny.yaml", "--out", f5],
        setup=lambda: (user.mkdir(parents=True, exist_ok=True), f5.write_text("mine\n")), sentinels=[f5])
    s6 = user / "samples.npy"
    add("lost:sample_over_users_npy", ["sample", "--model", w / "m" / "model", "--n", "2", "--out", s6],
        setup=lambda: (user.mkdir(parents=True, exist_ok=True), np.save(s6, np.zeros(3))), sentinels=[s6])
    d7 = user / "dangling"
    add("lost:out_dangling_symlink", ["classify", "--train", w / "train.npy", "--eval", w / "eval.npy", "--out", d7],
        setup=lambda: (user.mkdir(parents=True, exist_ok=True), d7.symlink_to(user / "gone")))
    d8, s8 = user_folder("demo_users_labels", files=("labels.csv",))
    add("lost:demo_over_user_labels", ["demo", "--out", d8, "--overwrite"], setup=s8, sentinels=[d8 / "labels.csv"])
    # 7. runs that should simply work (the batch's own control: a refusal here would be a false alarm)
    add("ok:classify_with_held_out", [*base, "--eval", w / "eval.npy", "--held-out", w / "held.npy", "--out",
                                      w / "cases" / "ok-classify"], expect="ok",
        check=lambda: "caveats" in json.loads((w / "cases" / "ok-classify" / "summary.json").read_text()))
    add("ok:classify_zero_one_with_range", ["classify", "--train", w / "train01.npy", "--eval", w / "eval01.npy",
                                            "--range", "0,1", "--out", w / "cases" / "ok-range", "--quiet"],
        expect="ok")
    add("input:range_zero_one_with_a_minus_one_train", [*base, "--eval", w / "eval01.npy", "--range", "0,1",
                                                        "--out", w / "cases" / "in-range"])
    np.save(w / "train01.npy", (np.load(w / "train.npy") + 1) / 2)
    # 8. the analyses' own settings
    for name, args in {
        "grid_bad_value": ["sweep", "--grid", "model.dropout=a,b", "--sizes", "2"],
        "grid_and_transition": ["sweep", "--grid", "model.dropout=0,0.1", "--find-transition", "--sizes", "2,8"],
        "basins_radii_decreasing": ["basins", run_dir, "--radii", "0.5,0.2"],
        "attractors_group_unknown": ["attractors", run_dir, "--groups", "spurious,ghosts"],
        "attractors_t_past_T": ["attractors", run_dir, "--ts", "5,1000"],
        "dynamics_size_absent": ["dynamics", run_dir, "--sizes", "5"],
        "compare_missing_runs": ["compare", w / "nope1", w / "nope2", "--out", w / "cases" / "cmp"],
    }.items():
        add(f"analysis:{name}", args)
    add("ok:status_verify", ["status", run_dir, "--verify"], expect="ok")
    add("ok:plan_gpu", ["sweep", "--preset", "paper-mnist", "--data", "mnist:/absent", "--plan-gpu", "H100"],
        expect="ok")
    add("ok:sample_default", ["sample", "--model", w / "m" / "model", "--n", "3", "--out", w / "cases" / "ok.npy",
                              "--quiet"], expect="ok",
        check=lambda: json.loads((w / "cases" / "ok.npy.json").read_text())["sampler"] == "dpm++sde")
    return out


def main(work: Path, tables: Path | None) -> int:
    fixtures(work)
    rows = []
    all_cases = cases(work)
    for i, case in enumerate(all_cases):
        if case["setup"]:
            case["setup"]()
        watch = case["sentinels"] + [work / "mine.txt", work / "train.npy", work / "run" / "results.csv"]
        before = fingerprint(watch)
        rc, out, err, secs = run(case["args"], cwd=work, env=case["env"])
        outcome = judge(case, rc, out, err, before, fingerprint(watch))
        last = (err.strip().splitlines() or [""])[-1][:200]
        rows.append({"case": case["name"], "expect": case["expect"], "outcome": outcome, "rc": rc,
                     "seconds": round(secs, 1), "said": last})
        print(f"[{i + 1}/{len(all_cases)}] {outcome:<8} {case['name']}: {last[:110]}", flush=True)
    with open(work / "hostile.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    counts = {k: sum(r["outcome"] == k for r in rows) for k in ("clean", "silent", "lost", "internal", "hang",
                                                               "refused")}
    print(f"{len(rows)} cases: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if tables:
        with open(tables / "hostile-summary.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["cases", *counts])
            w.writeheader()
            w.writerow({"cases": len(rows), **counts})
    return 0 if counts["clean"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None))
