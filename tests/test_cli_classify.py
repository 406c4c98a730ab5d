import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import cli as run
from mem2gen.core.planted import planted
from mem2gen.io.data import load_array


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sets")
    ev, tr, syn, truth = planted()
    for name, a in (("eval", ev), ("train", tr), ("synthetic", syn)):
        np.save(d / f"{name}.npy", a)
    np.savez(d / "both.npz", train=tr, other=syn)
    return d, truth


@pytest.mark.slow
def test_classify_writes_outputs(files, tmp_path, capsys):
    d, truth = files
    out = tmp_path / "out"
    assert run("classify", "--train", str(d / "train.npy"), "--synthetic", str(d / "synthetic.npy"),
               "--eval", str(d / "eval.npy"), "--out", str(out), "--iterations", "500", "--quiet") == 0
    assert sorted(p.name for p in out.iterdir()) == [".mem2gen-outputs", "labels.csv", "neighbors.png", "summary.json"]
    s = json.loads((out / "summary.json").read_text())
    assert s["counts"] == {"memorized": 100, "spurious": 100, "generalized": 100}
    assert len(s["inputs"]["train"]["sha256"]) == 64 and s["delta_m"] == pytest.approx(1 / 3)
    rows = (out / "labels.csv").read_text().splitlines()
    assert len(rows) == 301 and rows[0].startswith("index,label,d_train1,d_train2,d_syn1,ratio_m,ratio_s")
    assert "memorized" in capsys.readouterr().out
    # npz with a named key, and the same result
    out2 = tmp_path / "out2"
    assert run("classify", "--train", f"{d / 'both.npz'}:train", "--synthetic", str(d / "synthetic.npy"),
               "--eval", str(d / "eval.npy"), "--out", str(out2), "--no-grid", "--quiet") == 0
    assert (out2 / "labels.csv").read_text() == (out / "labels.csv").read_text()


def test_dataset_and_absolute_rule(files, tmp_path):
    d, _ = files
    out = tmp_path / "o"
    assert run("classify", "--train", str(d / "train.npy"), "--eval", str(d / "eval.npy"), "--dataset",
               "fashion-mnist", "--rule", "absolute", "--out", str(out), "--no-grid", "--quiet") == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["rule"] == "absolute" and s["delta_m"] == 0.03 and s["delta_s"] == 0.02 and s["leave_one_out"]


def test_image_folder_input(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    imgs = rng.integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(folder / f"{i:03d}.png")
    arr = load_array(folder)
    np.testing.assert_array_equal(arr, imgs.transpose(0, 3, 1, 2))


BAD = [
    (lambda d, t: ["--delta-m", "1.5"], "delta_m"),
    (lambda d, t: ["--delta-s", "0.6"], "delta_s"),
    (lambda d, t: ["--delta-s", "abc"], "not a finite number"),
    (lambda d, t: ["--train", str(t / "nan.npy")], "NaN"),
    (lambda d, t: ["--train", str(t / "one.npy")], "at least 2"),
    (lambda d, t: ["--train", str(t / "empty.npy")], "empty"),
    (lambda d, t: ["--train", str(t / "shape.npy")], "differ in sample shape"),
    (lambda d, t: ["--train", str(t / "trunc.npy")], "unreadable or truncated"),
    (lambda d, t: ["--train", str(t / "missing.npy")], "no such file"),
    (lambda d, t: ["--train", str(d / "both.npz")], "name one"),
    (lambda d, t: ["--distance", "lpips", "--lpips-backbone", str(t / "nope.pth")], "not found"),
]


@pytest.mark.parametrize("case", range(len(BAD)))
def test_bad_input_exit_2_nothing_written(files, tmp_path, capsys, case):
    d, _ = files
    tr = np.load(d / "train.npy")
    bad = tr.copy()
    bad[1, 0, 0, 0] = np.inf
    np.save(tmp_path / "nan.npy", bad)
    np.save(tmp_path / "one.npy", tr[:1])
    np.save(tmp_path / "empty.npy", tr[:0])
    np.save(tmp_path / "shape.npy", tr[:, :, :6, :6])
    np.save(tmp_path / "trunc.npy", tr)
    raw = (tmp_path / "trunc.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(raw[: len(raw) // 2])
    args = {"--train": str(d / "train.npy"), "--eval": str(d / "eval.npy")}
    extra = BAD[case][0](d, tmp_path)
    for i in range(0, len(extra), 2):
        args[extra[i]] = extra[i + 1]
    out = tmp_path / "out"
    flat = [x for kv in args.items() for x in kv]
    assert run("classify", *flat, "--out", str(out), "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mem2gen: error:") and BAD[case][1] in err[0]
    assert not out.exists()
    assert not list(tmp_path.glob("out.mem2gen-tmp-*"))


def test_refuses_to_overwrite(files, tmp_path, capsys):
    d, _ = files
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert run("classify", "--train", str(d / "train.npy"), "--eval", str(d / "eval.npy"), "--out", str(out)) == 2
    assert "--overwrite" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"


def test_console_script_exit_code(files, tmp_path):
    d, _ = files
    p = subprocess.run([sys.executable, "-m", "mem2gen.cli", "classify", "--train", str(d / "train.npy"),
                        "--eval", str(d / "eval.npy"), "--delta-m", "2", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_outputs_have_usual_permissions(files, tmp_path):
    import os
    import stat

    d, _ = files
    out = tmp_path / "perm"
    assert run("classify", "--train", str(d / "train.npy"), "--eval", str(d / "eval.npy"), "--out", str(out),
               "--no-grid", "--quiet") == 0
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((out / "summary.json").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~mask


def test_released_protocol(tmp_path):
    """--protocol released: the absolute rule with the eval set as S' (self-match dropped); --synthetic refused;
    LPIPS unless --distance says otherwise (here l2)."""
    from mem2gen import classify

    rng = np.random.default_rng(0)
    tr = rng.uniform(-1, 1, (20, 1, 8, 8)).astype(np.float32)
    ev = np.concatenate([tr[:5] + 0.001, rng.uniform(-1, 1, (15, 1, 8, 8)).astype(np.float32)])
    np.save(tmp_path / "tr.npy", tr)
    np.save(tmp_path / "ev.npy", ev)
    assert run("classify", "--train", tmp_path / "tr.npy", "--eval", tmp_path / "ev.npy", "--protocol", "released",
               "--distance", "l2", "--out", tmp_path / "o", "--quiet") == 0
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    ref = classify(ev, tr, None, rule="absolute")  # the same thing from Python
    assert (s["rule"], s["protocol"], s["leave_one_out"]) == ("absolute", "released", True)
    assert s["counts"] == dict(zip(("memorized", "spurious", "generalized"), ref.counts.tolist()))
    assert s["counts"]["memorized"] == 5
    assert run("classify", "--train", tmp_path / "tr.npy", "--eval", tmp_path / "ev.npy", "--synthetic",
               tmp_path / "ev.npy", "--protocol", "released", "--out", tmp_path / "o2") == 2
    assert run("classify", "--train", tmp_path / "tr.npy", "--eval", tmp_path / "ev.npy", "--protocol", "released",
               "--lpips-backbone", tmp_path / "none.pth", "--out", tmp_path / "o3") == 2  # LPIPS asked for its weights


def test_verbose_logs_what_each_stage_chose(files, tmp_path, capsys):
    """-v routes the "mem2gen" logger to stderr (which search ran, on what); without it, stderr holds
    no log lines (only the caveats on the samples)."""
    from mem2gen.cli import set_verbosity

    d, _ = files
    args = ["classify", "--train", str(d / "train.npy"), "--synthetic", str(d / "synthetic.npy"),
            "--eval", str(d / "eval.npy"), "--iterations", "10", "--quiet", "--no-grid"]
    try:
        assert run("-v", *args, "--out", str(tmp_path / "a")) == 0
        err = capsys.readouterr().err
        assert "mem2gen.core.neighbors: " in err and "300 queries x 300 references, certified float32 search" in err
        assert run(*args, "--out", str(tmp_path / "b")) == 0
        assert all(line.startswith("caveat: ") for line in capsys.readouterr().err.splitlines())  # no log lines
    finally:
        set_verbosity(0)


@pytest.mark.slow
def test_held_out_null_beside_each_fraction(tmp_path, capsys):
    """`classify --held-out`: the null of real items outside S at the same |S_eval| and |S'|, the excess
    and its exact p-value, as calibrate computes them on the same arrays; a held-out set too small for
    the full |S'| makes the model be labelled again at the null's |S'|."""
    import json

    from scipy.stats import fisher_exact

    from mem2gen import classify
    from mem2gen.core.null import held_out_null
    from mem2gen.core.planted import digits

    ev, tr, syn, _ = planted()
    syn = syn[np.random.default_rng(1).permutation(len(syn))[:600]]  # the planted S', shuffled: blends in any prefix
    held = digits()[600:]  # 1,197 real items outside S (and outside S_eval's real digits)
    for name, a in (("ev", ev), ("tr", tr), ("syn", syn), ("held", held), ("few", held[:500])):
        np.save(tmp_path / f"{name}.npy", a)
    for held_name, m in (("held", len(syn)), ("few", 250)):
        out = tmp_path / f"out-{held_name}"
        assert run("classify", "--train", tmp_path / "tr.npy", "--eval", tmp_path / "ev.npy", "--synthetic",
                   tmp_path / "syn.npy", "--held-out", tmp_path / f"{held_name}.npy", "--iterations", "200",
                   "--out", out) == 0
        text = capsys.readouterr().out
        assert "null (held-out real data" in text and "one-sided exact p" in text and "this one model" in text
        null = json.loads((out / "summary.json").read_text())["null"]
        assert null["n_synthetic"] == m and null["n_eval"] == min(len(ev),
                                                                  len(np.load(tmp_path / f"{held_name}.npy")) // 2)
        model = classify(ev, tr, syn)
        ref = held_out_null(ev, tr, syn, np.load(tmp_path / f"{held_name}.npy"), model_counts=model.counts,
                            iterations=200, seed=0)
        assert json.loads(json.dumps(ref)) == null
        perm = np.random.default_rng(0).permutation(len(np.load(tmp_path / f"{held_name}.npy")))
        h = np.load(tmp_path / f"{held_name}.npy")[perm]
        n = null["n_eval"]
        by_hand = classify(h[:n], tr, h[n:n + m], check_duplicates=False).counts.tolist()
        assert [null["counts"][k] for k in ("memorized", "spurious", "generalized")] == by_hand
        at = classify(ev, tr, syn[:m]).counts if m < len(syn) else model.counts
        mc = null["model_counts"]
        assert [mc[k] for k in ("memorized", "spurious", "generalized")] == list(at)
        p = fisher_exact([[mc["spurious"], len(ev) - mc["spurious"]],
                          [null["counts"]["spurious"], n - null["counts"]["spurious"]]], alternative="greater")[1]
        assert null["excess"]["spurious"]["p"] == pytest.approx(p, rel=1e-9)
        assert null["excess"]["spurious"]["excess"] > 0.15 and null["excess"]["spurious"]["p"] < 1e-6  # planted blends


def test_checks_reuse_the_searches_the_labels_made(files, tmp_path, monkeypatch):
    """With the default checks, classify searches three times (S_eval→S, S_eval→S', one S→S for both the
    duplicate check and the off-manifold threshold); the labels are those of plain classify(), and the
    threshold is the one a separate S→S search over the same draw gives."""
    from mem2gen import classify
    from mem2gen.commands.classify import classify_files
    from mem2gen.core import neighbors
    from mem2gen.core.checks import off_manifold

    d, _ = files
    calls = []
    real = neighbors.nearest
    monkeypatch.setattr(neighbors, "nearest", lambda *a, **kw: calls.append(kw.get("desc")) or real(*a, **kw))
    res = classify_files(d / "eval.npy", d / "train.npy", d / "synthetic.npy", out=tmp_path / "o", dataset="mnist",
                         grid=False, iterations=10, progress=False)
    assert len(calls) == 3, calls
    monkeypatch.setattr(neighbors, "nearest", real)
    ev, tr, syn = (np.load(d / f"{n}.npy") for n in ("eval", "train", "synthetic"))
    np.testing.assert_array_equal(res.result.labels, classify(ev, tr, syn, dataset="mnist").labels)
    alone = off_manifold(ev, tr, None, n_real=5000, seed=0)
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["off_manifold"]["threshold"] == alone["threshold"]
