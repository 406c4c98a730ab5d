"""The results schema: every column of results.csv and points.csv declared once (name, meaning, table),
and the cells the printed table and report.html show. The column order of both files, the table's and the
report's headers and docs/results-csv.md (:func:`markdown`, tested against the page) derive from here.

``<label>`` stands for each of memorized, spurious, generalized; ``<tested>`` for each class compared with
the null: memorized, spurious (unconditional) and spurious_nonmem (eq 5's share among non-memorized
samples, :mod:`mem2gen.core.null`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core.null import TESTED
from ..core.stats import LABELS


@dataclass(frozen=True)
class Column:
    """One column (or one per class where ``name`` holds ``<label>`` or ``<tested>``)."""

    name: str
    meaning: str
    table: str = "both"  # "results", "points" or "both"

    def expand(self) -> list[str]:
        if "<label>" in self.name:
            return [self.name.replace("<label>", c) for c in LABELS]
        if "<tested>" in self.name:
            return [self.name.replace("<tested>", c) for c in TESTED]
        return [self.name]


_ONE_OR_MODELS = "bootstrap (one model) or a t-interval over the models"
# one block per class is written class after class (all of memorized's columns, then spurious's, ...)
IDENTITY = [
    Column("K", "training-set size"),
    Column("replicate", "the model's index, 0 … R − 1; its folder is `K=<k>` for 0, `K=<k>.r<i>` otherwise", "points"),
    Column("n_replicates", "models behind the row", "results"),
    Column("model_digest", "the sha256 of the model's weights (one model's row): its identity, so `pool` counts "
                           "each model once"),
    Column("inference", '"one model" or "models": how the row\'s intervals and tests were made (above)', "results"),
    Column("n_eval", "\\|S_eval\\|, samples labelled per model"),
    Column("n_synthetic", "\\|S'\\| per model"),
    Column("synthetic_per_K", "\\|S'\\| / K"),
]
PER_LABEL = [
    Column("count_<label>", "samples with that label (summed over the models)"),
    Column("frac_<label>", "the fraction (one model), or the mean of the models' fractions"),
    Column("mean_<label>", "the bootstrap mean of one model's fraction (one model only: with several it would be "
                           "`frac_`; tables of earlier versions have it, and `sd_between_`, as duplicates)"),
    Column("std_<label>", "one model: the bootstrap sd; several: the between-model sd"),
    Column("lo95_<label>", "the 95% interval's lower end: " + _ONE_OR_MODELS + ", clipped to [0, 1]"),
    Column("hi95_<label>", "its upper end"),
]
CONDITIONAL = [
    Column("frac_spurious_nonmem", "eq 5 among the non-memorized samples: spurious / (spurious + generalized), "
                                   "or the models' mean; empty where every sample is memorized"),
    Column("std_spurious_nonmem", "its between-model sd (several models only)", "results"),
    Column("lo95_spurious_nonmem", "its t-interval over the models (several models only)", "results"),
    Column("hi95_spurious_nonmem", "its upper end", "results"),
]
PER_TESTED = [
    Column("null_<tested>", "the rule's fraction on real held-out items in place of the samples (the null), at "
                            "the point's \\|S_eval\\| and the null's \\|S'\\| (mean over the models' nulls); "
                            "for `spurious_nonmem` the null's spurious share among its non-memorized items"),
    Column("null_lo95_<tested>", "its interval (bootstrap, or t over the models; unconditional classes, and "
                                 "`spurious_nonmem` over models)"),
    Column("null_hi95_<tested>", "its upper end"),
    Column("frac_<tested>_at_null", "the model's fraction with its S' cut to the null's \\|S'\\| (its first "
                                    "samples): the fraction the excess and the test compare"),
    Column("excess_<tested>", "`frac_<tested>_at_null` − `null_<tested>` (mean over the models, each against its "
                              "own null)"),
    Column("excess_lo95_<tested>", "its 95% interval: bootstrap of both sides (one model) or t-interval over the "
                                   "models' excesses"),
    Column("excess_hi95_<tested>", "its upper end"),
    Column("excess_sd_<tested>", "between-model sd of the excess (several models only)", "results"),
    Column("p_<tested>", "one-sided p-value that the model exceeds its null: Fisher's exact test on the counts "
                         "(one model) or a one-sample t-test of the models' excesses (several)"),
    Column("significant_<tested>", "results.csv: 1 where `p_` survives **Holm's correction over all K of the run** "
                                   "(family-wise 5%); points.csv: 1 where that one model's `p_` < 0.05, uncorrected. "
                                   "With one model per K it holds within that model only"),
    Column("p_mixed_<tested>", "several models: the one-sided p-value of a binomial mixed model (a random "
                               "intercept per model; mem2gen.core.mixed), beside the t-test; with 3-5 models its "
                               "likelihood ratio can be liberal (docs/tables/coverage.csv measures it)", "results"),
    Column("odds_mixed_<tested>", "that model's excess as an odds ratio, models against their nulls", "results"),
    Column("null_count_<tested>", "the null's count of the class (summed over the models)"),
    Column("model_count_<tested>_at_null", "the model's count at the null's \\|S'\\| (summed over the models)"),
]
NULL_SIZES = [
    Column("null_n_spurious_nonmem", "the null's non-memorized items: the denominator of its conditional share"),
    Column("model_n_spurious_nonmem_at_null", "the model's non-memorized samples at the null's \\|S'\\|"),
    Column("null_n", "held-out items the null labelled (summed over the models)"),
    Column("model_n_at_null", "the model's samples behind `frac_<tested>_at_null` (summed over the models)"),
    Column("null_n_synthetic", "the null's \\|S'\\|: smaller than `n_synthetic` where the dataset holds too few "
                               "items outside S_K (smallest over the models)"),
]
CHECKS = [
    Column("off_manifold", "share of S_eval farther from every real item (S and held-out) than 99% of real "
                           "held-out items are"),
    Column("off_manifold_lo95", "its interval (bootstrap, or t over the models)"),
    Column("off_manifold_hi95", "its upper end"),
    Column("generalized_off_manifold", "that share among the generalized samples (mean over the models that made "
                                       "any; a warning in the report when most are)"),
    Column("quality_fd", "FD of S_eval against real data in the features of an autoencoder trained on the dataset "
                         "(not Inception)"),
    Column("quality_kid", "KID in the same features"),
    Column("quality_real_fd", "FD of real data against itself at the same size: the floor to read `quality_fd` "
                              "against"),
]
SECTIONS = [("identity", IDENTITY), ("fractions", PER_LABEL), ("the conditional share", CONDITIONAL),
            ("the null and the excess over it", PER_TESTED), ("sizes behind the null", NULL_SIZES),
            ("checks", CHECKS)]
# names a column had in tables of earlier versions (model-level rows held each twice)
OLD_NAMES = {f"mean_{c}": f"frac_{c}" for c in LABELS} | {f"sd_between_{c}": f"std_{c}" for c in LABELS}


def names() -> list[str]:
    """Every column, in file order (class blocks class after class)."""
    out = []
    for _, cols in SECTIONS:
        per_class = [c for c in cols if "<" in c.name]
        out += [n for c in cols if "<" not in c.name for n in c.expand()]
        classes = LABELS if any("<label>" in c.name for c in per_class) else TESTED
        for i in range(len(classes)):
            out += [c.expand()[i] for c in per_class]
    return out


def ordered(rows: list[dict]) -> list[str]:
    """The columns of ``rows`` in schema order; a key the schema does not declare comes last (and a test
    fails on it, so every column is declared here)."""
    present = dict.fromkeys(k for r in rows for k in r)
    known = [n for n in names() if n in present]
    return known + [k for k in present if k not in known]


def undeclared(rows: list[dict]) -> list[str]:
    """Keys of ``rows`` the schema does not declare (as a column, or as the old name of one)."""
    known = set(names()) | set(OLD_NAMES)
    return [k for k in dict.fromkeys(k for r in rows for k in r) if k not in known]


def with_old_names(row: dict) -> dict:
    """A row read from a file, with the names earlier versions gave its columns filled in where missing
    (``sd_between_spurious`` of a model-level row is its ``std_spurious``), so old readers keep working."""
    if row.get("inference") != "models":
        return row
    return row | {old: row[new] for old, new in OLD_NAMES.items() if old not in row and new in row}


def markdown() -> str:
    """docs/results-csv.md (generated: ``make docs``; a test compares the page with this)."""
    lines = ["# results.csv and points.csv", "",
             "<!-- Generated from mem2gen.runs.schema by `make docs`: edit the schema, not this page. -->", "",
             "`mem2gen report RUN` (and every sweep) writes `results.csv`, one row per classified K, and, with",
             "`replicates: R > 1`, `points.csv`, one row per model. `mem2gen.Run(RUN).results()` and",
             "`.point_results()` return the same rows as dicts; `mem2gen.runs.results.read_rows(path)` reads a file",
             "back (numbers as numbers, empty cells as None, the old names of renamed columns filled in).", "",
             "**One model per K** (`inference` = \"one model\"): intervals are bootstrap intervals over that model's",
             "samples (App. B.1, `bootstrap_iterations` draws) and tests are per-sample exact tests; the variance",
             "between models trained with other seeds is not measured. **Several models per K** (`inference` =",
             "\"models\"): fractions are means over the models, intervals are t-intervals over the models' values",
             "(df = R − 1), and tests are one-sided t-tests of the models' excesses. A test always compares the",
             "model with its null at equal |S_eval| and |S'|.", "",
             "Eq 5 counts a sample as spurious only when it is not memorized, and held-out real items are almost",
             "never memorized, so the null is given in two forms: unconditional (`spurious`: P(spurious) of the",
             "model against that of the null) and conditional (`spurious_nonmem`: the spurious share among",
             "non-memorized samples of each). Neither alone locates the spurious window; read both.", "",
             "`<label>` is each of " + ", ".join(f"`{c}`" for c in LABELS) + "; `<tested>` each of "
             + ", ".join(f"`{c}`" for c in TESTED) + " (the classes compared with the null). Columns are left out",
             "where their file is missing (no null, no off-manifold check, no FD/KID), and a cell is empty where it",
             "cannot be computed (no held-out data at K = N; an sd over one model; a share with no non-memorized",
             "sample). Tables of earlier versions also hold `mean_<label>` and `sd_between_<label>` in model-level",
             "rows, duplicates of `frac_<label>` and `std_<label>`.", ""]
    for title, cols in SECTIONS:
        lines += [f"## {title[0].upper()}{title[1:]}", "", "| column | table | meaning |", "|---|---|---|"]
        where = {"both": "both", "results": "results.csv", "points": "points.csv"}
        lines += [f"| `{c.name}` | {where[c.table]} | {c.meaning} |" for c in cols]
        lines.append("")
    return "\n".join(lines)
