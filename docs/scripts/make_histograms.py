#!/usr/bin/env python
"""Histograms of fastinit's random initializers next to their theoretical densities.

For every random initializer of the registry (the subclasses of
``SeededInitializer`` in ``fastinit.initializers.registry.ALL_OBJECTS``, and
each distribution of ``VarianceScaling``), draw a fixed-seed sample with
fastinit, plot its histogram with the exact density from SciPy, and write
``docs/_static/catalogue/<name>.png``. The catalogue page
(``docs/initializers.md``) shows them. Regenerate them, from the repository
root, with::

    pip install -e ".[docs]"          # matplotlib and scipy
    python docs/scripts/make_histograms.py

The samples are fixed (seeds and shapes below), so a new run only changes the
images if the stream, the initializers or matplotlib change. ``--check``
draws the samples and reports the Kolmogorov-Smirnov distances without writing
anything; ``--only NAME`` limits the run to some images.
"""

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT_DIR = HERE.parent / "_static" / "catalogue"
sys.path.insert(0, str(ROOT))  # the checkout, also when fastinit is not installed

import fastinit.initializers as fi  # noqa: E402
from fastinit.initializers.base import SeededInitializer  # noqa: E402
from fastinit.initializers.registry import ALL_OBJECTS  # noqa: E402

SEED = 0
SHAPE = (512, 1024)          # a dense kernel, Keras layout (in, out): fan_in 512, fan_out 1024
ORTHO_SHAPE = (8, 8)         # small matrices, so the entry density is visibly not normal
ORTHO_DRAWS = 4096           # 4096 independent matrices (streams 0..4095): 262,144 entries
SPARSE_SHAPE = (1000, 1000)
SPARSITY = 0.25


@dataclass
class Case:
    name: str                                # the PNG's file name, without ".png"
    cls: type                                # the initializer class it illustrates
    title: str                               # the call, as written on the plot
    sample: Callable[[], np.ndarray]         # the values to histogram (1-D, float64)
    density: object                          # a frozen scipy.stats distribution
    zero_mass: float = 0.0                   # probability of an exact 0 (Sparse)
    note: str = ""


def _flat(x):
    return np.asarray(x, dtype=np.float64).ravel()


def _orthogonal_entries(init, shape, centre=None):
    """Entries of ``ORTHO_DRAWS`` matrices from one initializer, one stream per matrix."""
    values = []
    for stream in range(ORTHO_DRAWS):
        w = init(shape, stream=stream)
        values.append(w[centre] if centre is not None else w)
    return _flat(np.stack(values))


def _haar_entry(n, gain=1.0):
    """One entry of a Haar-distributed orthogonal matrix whose unit vectors have length n.

    A column (or row) is uniform on the unit sphere of R^n, so an entry x has
    density proportional to (1 - x**2)**((n - 3) / 2) on [-1, 1]: (x + 1) / 2 is
    Beta((n - 1) / 2, (n - 1) / 2). Scaled by ``gain``.
    """
    from scipy import stats
    a = (n - 1) / 2
    return stats.beta(a, a, loc=-gain, scale=2 * gain)


def cases():
    from scipy import stats

    out = []
    shape_txt = f"{SHAPE}"

    init = fi.RandomNormal(seed=SEED)
    out.append(Case("random_normal", fi.RandomNormal, f"RandomNormal(seed={SEED})({shape_txt})",
                    lambda: _flat(init(SHAPE)), stats.norm(init.mean, init.stddev)))
    init_u = fi.RandomUniform(seed=SEED)
    out.append(Case("random_uniform", fi.RandomUniform,
                    f"RandomUniform(seed={SEED})({shape_txt})", lambda: _flat(init_u(SHAPE)),
                    stats.uniform(init_u.minval, init_u.maxval - init_u.minval)))
    init_t = fi.TruncatedNormal(seed=SEED)
    p = init_t.parameters()
    out.append(Case("truncated_normal", fi.TruncatedNormal,
                    f"TruncatedNormal(seed={SEED})({shape_txt})", lambda: _flat(init_t(SHAPE)),
                    stats.truncnorm((p["a"] - p["mean"]) / p["stddev"],
                                    (p["b"] - p["mean"]) / p["stddev"],
                                    loc=p["mean"], scale=p["stddev"])))

    def variance_scaling_case(name, cls, init, title):
        q = init.parameters(SHAPE)
        if q["distribution"] == "uniform":
            dist = stats.uniform(-q["limit"], 2 * q["limit"])
        elif q["distribution"] == "untruncated_normal":
            dist = stats.norm(0.0, q["stddev"])
        else:
            dist = stats.truncnorm(q["a"] / q["stddev"], q["b"] / q["stddev"], scale=q["stddev"])
        note = f"fan_in={q['fan_in']}, fan_out={q['fan_out']}, variance={q['variance']:.3g}"
        return Case(name, cls, f"{title}({shape_txt})", lambda: _flat(init(SHAPE)), dist,
                    note=note)

    for dist in ("truncated_normal", "untruncated_normal", "uniform"):
        init_vs = fi.VarianceScaling(1.0, "fan_in", dist, seed=SEED)
        out.append(variance_scaling_case(
            f"variance_scaling_{dist}", fi.VarianceScaling, init_vs,
            f'VarianceScaling(1.0, "fan_in", "{dist}", seed={SEED})'))
    for cls, name in ((fi.GlorotUniform, "glorot_uniform"), (fi.GlorotNormal, "glorot_normal"),
                      (fi.HeUniform, "he_uniform"), (fi.HeNormal, "he_normal"),
                      (fi.LecunUniform, "lecun_uniform"), (fi.LecunNormal, "lecun_normal")):
        out.append(variance_scaling_case(name, cls, cls(seed=SEED),
                                         f"{cls.__name__}(seed={SEED})"))

    init_o = fi.Orthogonal(seed=SEED)
    out.append(Case("orthogonal", fi.Orthogonal,
                    f"Orthogonal(seed={SEED})({ORTHO_SHAPE}, stream=0..{ORTHO_DRAWS - 1})",
                    lambda: _orthogonal_entries(init_o, ORTHO_SHAPE),
                    _haar_entry(max(ORTHO_SHAPE)),
                    note="entry of a Haar matrix: (x + 1) / 2 ~ Beta(3.5, 3.5)"))
    init_d = fi.DeltaOrthogonal(seed=SEED)
    kernel = (3, 3) + ORTHO_SHAPE
    out.append(Case("delta_orthogonal", fi.DeltaOrthogonal,
                    f"DeltaOrthogonal(seed={SEED})({kernel}, stream=0..{ORTHO_DRAWS - 1})",
                    lambda: _orthogonal_entries(init_d, kernel, centre=(1, 1)),
                    _haar_entry(max(ORTHO_SHAPE)),
                    note="centre tap [1, 1] (all other taps are 0): Haar entries"))
    init_s = fi.Sparse(SPARSITY, seed=SEED)
    rows = SPARSE_SHAPE[0]
    zero_mass = int(np.ceil(SPARSITY * rows)) / rows
    out.append(Case("sparse", fi.Sparse,
                    f"Sparse({SPARSITY}, seed={SEED})({SPARSE_SHAPE})",
                    lambda: _flat(init_s(SPARSE_SHAPE)), stats.norm(0.0, init_s.stddev),
                    zero_mass=zero_mass,
                    note=f"{zero_mass:.0%} of each column set to exactly 0"))
    return out


def check_coverage(all_cases):
    """Every random initializer class of the registry has at least one image."""
    random_classes = {c for c in ALL_OBJECTS if issubclass(c, SeededInitializer)}
    missing = random_classes - {c.cls for c in all_cases}
    if missing:
        raise SystemExit("no histogram case for " + ", ".join(sorted(c.__name__ for c in missing))
                         + ": add one to docs/scripts/make_histograms.py")


def ks_distance(case, values):
    """Kolmogorov-Smirnov distance of the sample (nonzero part for Sparse) to the density."""
    from scipy import stats
    if case.zero_mass:
        values = values[values != 0]
    return stats.kstest(values, case.density.cdf).statistic


def plot(case, values, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = values.size
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=80)
    continuous = values[values != 0] if case.zero_mass else values
    lo, hi = case.density.support()
    lo = max(lo, case.density.ppf(1e-5))
    hi = min(hi, case.density.ppf(1 - 1e-5))
    pad = 0.04 * (hi - lo)
    edges = np.linspace(lo - pad, hi + pad, 121)
    # Heights relative to all n values, so the continuous part integrates to 1 - zero_mass.
    counts, _ = np.histogram(continuous, bins=edges)
    heights = counts / (n * np.diff(edges))
    ax.stairs(heights, edges, fill=True, color="#9ecae1", label=f"fastinit, {n:,} values")
    grid = np.linspace(edges[0], edges[-1], 801)
    pdf = (1 - case.zero_mass) * case.density.pdf(grid)
    ax.plot(grid, pdf, color="#d62728", lw=1.4,
            label="theoretical density" + (" (nonzero part)" if case.zero_mass else ""))
    top = max(heights.max(), pdf.max())
    if case.zero_mass:  # the point mass at 0: an arrow, its height not to scale
        ax.annotate("", (0.0, top), xytext=(0.0, 0.0),
                    arrowprops=dict(arrowstyle="-|>", color="k", lw=1.5))
        ax.plot([], [], color="k", lw=1.5, label=f"point mass P(x = 0) = {case.zero_mass:.2f}")
    d = ks_distance(case, values)
    text = f"KS distance {d:.4f}"
    if case.note:
        text = case.note + "\n" + text
    ax.text(0.01, 0.97, text, transform=ax.transAxes, va="top", fontsize=8)
    ax.set_title(case.title, fontsize=9)
    ax.set_xlabel("value", fontsize=8)
    ax.set_ylabel("density", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_ylim(0, 1.25 * top)
    ax.legend(fontsize=7, loc="upper right", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=80, metadata={"Software": None}, pil_kwargs={"optimize": True})
    plt.close(fig)
    return d


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for the PNGs")
    parser.add_argument("--only", nargs="*", help="names of the images to make")
    parser.add_argument("--check", action="store_true",
                        help="draw the samples and print KS distances, write nothing")
    args = parser.parse_args(argv)
    all_cases = cases()
    check_coverage(all_cases)
    if not args.check:
        os.makedirs(args.out, exist_ok=True)
    for case in all_cases:
        if args.only and case.name not in args.only:
            continue
        values = case.sample()
        if args.check:
            print(f"{case.name:34s} n={values.size:>9,}  KS {ks_distance(case, values):.5f}")
            continue
        path = args.out / f"{case.name}.png"
        d = plot(case, values, path)
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  "
              f"{path.stat().st_size / 1024:.0f} KiB  KS {d:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
