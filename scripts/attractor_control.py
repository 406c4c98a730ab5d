"""docs/tables/attractors-control.csv and attractors-window.csv: the attractor study's positive control and the
noise window of DenseAM theory on the training sets S_K of a sweep (no trained model needed).

For each K: the theory window of S_K (:func:`mem2gen.analyses.attractors.theory_window`; one row per K in
attractors-window.csv) and, for each of three draws of planted mixtures (seeds 0-2), the study
(:func:`mem2gen.analyses.attractors.planted_control`) of the exact denoiser of S_K with 16 planted mixtures of
2-3 items ("planted control") and of S_K alone ("exact S_K"), from three groups of starts: near the planted
states ("planted"), real held-out items and hand-made mixtures; at t = 5-400 and every 25 steps through the
window. attractors-control.csv: one row per (K, seed, model, t, group).
Run: python scripts/attractor_control.py RUN docs/tables [K ...]   (default K: 32 128 512)"""
import sys
from pathlib import Path

from mem2gen.analyses.attractors import AttractorConfig, mixtures, planted_control, theory_window
from mem2gen.io.files import write_csv
from mem2gen.runs.run import Run

run, out = Run(sys.argv[1]), Path(sys.argv[2])
sizes = [int(k) for k in sys.argv[3:]] or [32, 128, 512]
windows, rows = [], []
for k in sizes:
    point = run.point(k, 0)  # every replicate of a K shares S_K (replicates differ in the model's seed)
    train = point.train_set
    w = theory_window(train)
    windows.append({"K": k, **{key: v for key, v in w.items() if key != "ts"}, "n_window_ts": len(w["ts"])})
    print(f"K={k}: window t = {w['t_from']}-{w['t_to']} (β = {w['beta_pair']:.3f} … {w['beta_global']:.3f})",
          flush=True)
    for seed in range(3):
        cfg = AttractorConfig(ts=tuple(sorted({5, 10, 20, 50, 100, 200, 400} | set(w["ts"]))), per_group=32,
                              n_synthetic=0, barrier_pairs=8, n_planted=16, seed=seed)
        groups = {"held-out": point.held_out(32, [seed, k, 0xA77]), "mixture": mixtures(train, 32, seed=seed)[0]}
        for model, res in planted_control(train, groups, cfg).items():
            rows += [{"K": k, "seed": seed, "model": model, **r,
                      "in_window": w["t_from"] <= r["t"] <= w["t_to"]} for r in res["census"]]
        print(f"  seed {seed} done", flush=True)
write_csv(out / "attractors-window.csv", windows)
write_csv(out / "attractors-control.csv", rows)
print(f"wrote {out}/attractors-window.csv and attractors-control.csv")
