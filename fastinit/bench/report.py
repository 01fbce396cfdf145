"""The benchmark's results as a table, JSON and a PNG bar chart."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from .cases import FLAT_CASES, KERNEL_COLUMNS, SEED, TRUNCATION, DEFAULT_ORTHO_SIZE, \
    model_config
from .measure import machine_line

if TYPE_CHECKING:
    import os
    from collections.abc import Sequence

    from .measure import Result

__all__ = ["format_table", "to_json", "write_plot", "plot_title", "PLOT_MISSING"]

MiB = float(1 << 20)

_CASE_LABEL = {"normal": "normal", "uniform": "uniform",
               "truncated_normal": f"trunc normal +-{TRUNCATION:g}",
               "variance_scaling": "glorot uniform", "orthogonal": "orthogonal",
               "model": "llama model", "jax_normal": "jax: normal",
               "jax_truncated_normal": f"jax: trunc normal +-{TRUNCATION:g}"}


def _case_label(result: Result) -> str:
    if result.case == "orthogonal" and len(result.shape) == 2:
        return f"orthogonal {result.shape[0]}x{result.shape[1]}"
    return _CASE_LABEL[result.case]


def _shape_lines(results: Sequence[Result], dtype: str, size: int) -> list[str]:
    """What the cases with their own shapes measure (their n differs from --size)."""
    shapes: dict[str, tuple[tuple[int, ...], int]] = {}
    for r in results:
        shapes.setdefault(r.case, (r.shape, r.n))
    lines = []
    if "variance_scaling" in shapes:
        shape, n = shapes["variance_scaling"]
        torch = any(r.case == "variance_scaling" and r.implementation == "torch"
                    for r in results)
        lines.append(f"glorot uniform: a {shape[0]:,} x {shape[1]:,} {dtype} kernel "
                     f"({n:,} elements, {n * _itemsize(dtype) / MiB:,.1f} MiB), "
                     f"limit sqrt(6 / (fan_in + fan_out))"
                     + ("; torch fills the transposed (out, in) shape" if torch else ""))
    if "orthogonal" in shapes:
        shape, n = shapes["orthogonal"]
        lines.append(f"orthogonal: one {shape[0]:,} x {shape[1]:,} {dtype} matrix "
                     f"({n:,} elements, {n * _itemsize(dtype) / MiB:,.1f} MiB); rate in "
                     f"elements/s, the time per matrix in the note")
    if "model" in shapes:
        _, n = shapes["model"]
        c = model_config(size)
        lines.append(f"llama model: LlamaForCausalLM, hidden {c['hidden_size']}, intermediate "
                     f"{c['intermediate_size']}, {c['num_hidden_layers']} layers, vocabulary "
                     f"{c['vocab_size']}, {dtype} ({n:,} parameters, "
                     f"{n * _itemsize(dtype) / MiB:,.1f} MiB); rate in parameters/s, "
                     "'x NumPy' is the ratio to the transformers build, peak MiB excludes "
                     "the model")
    return lines


def format_table(results: Sequence[Result], *, info: dict[str, Any], command: str, size: int,
                 dtype: str, repeat: int, threads: int, peak_ok: bool,
                 budget: float | None = None) -> str:
    lines = [
        "fastinit side-by-side benchmark",
        f"machine: {machine_line(info, threads)}",
        f"command: {command}",
        (f"n = {size:,} {dtype} elements ({size * _itemsize(dtype) / MiB:,.1f} MiB output), "
         if any(r.case in FLAT_CASES for r in results) else f"{dtype}, ")
        + f"best of up to {repeat} timed calls"
        + (f" (fewer past {budget:g} s)" if budget else "") + f", threads = {threads}",
        *_shape_lines(results, dtype, size),
        "",
    ]
    header = ("case", "implementation", "G elem/s", "x NumPy", "peak MiB", "note")
    rows: list[tuple[str, ...]] = []
    for r in results:
        if r.rate:
            rate = _format_rate(r.rate)
            ratio = f"{r.x_numpy:.2f}x" if r.x_numpy else "-"
            peak = f"{r.peak_bytes / MiB:.1f}" if r.peak_bytes is not None else "n/a"
            note = r.note
        else:
            rate = ratio = peak = "-"
            note = f"skipped: {r.skipped}" if r.skipped else f"error: {r.error}"
        rows.append((_case_label(r), r.implementation, rate, ratio, peak, note))
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    right = (False, False, True, True, True, False)

    def fmt(row: Sequence[str]) -> str:
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
        return "  ".join(cells).rstrip()

    lines.append(fmt(header))
    lines.append(fmt(tuple("-" * w for w in widths)))
    previous = None
    for raw, row in zip(results, rows):
        if previous is not None and raw.case != previous:
            lines.append("")
        previous = raw.case
        lines.append(fmt(row))
    lines += [
        "",
        "G elem/s: elements per second (1e9) from the best timed call; the implementations "
        "of a case take turns, one call each per round; compiling is not timed "
        "(fastinit's first call, JAX's jit ahead of time).",
        "x NumPy: rate / NumPy's rate for the same case (numpy Generator; numpy rejection for "
        "the truncated normal; numpy.linalg.qr for the orthogonal matrix).",
        ("peak MiB: peak RSS during the call above the RSS before it, the (resident) output "
         "excluded." if peak_ok else
         "peak MiB: n/a (the peak-RSS counter cannot be reset on this system)."),
    ]
    return "\n".join(lines)


def _format_rate(rate: float) -> str:
    g = rate / 1e9
    return f"{g:.3f}" if g >= 0.001 else f"{g:.1e}"


def _itemsize(dtype: str) -> int:
    return 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize


def to_json(results: Sequence[Result], *, info: dict[str, Any], command: str,
            argv: Sequence[str], size: int, dtype: str, repeat: int, threads: int,
            peak_ok: bool, ortho_size: int = DEFAULT_ORTHO_SIZE,
            budget: float | None = None) -> dict[str, Any]:
    return {
        "benchmark": "fastinit.bench",
        "command": command,
        "argv": list(argv),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": info,
        "settings": {"size": size, "dtype": dtype, "repeat": repeat, "budget_seconds": budget,
                     "threads": threads,
                     "seed": SEED, "truncation_std": TRUNCATION, "ortho_size": ortho_size,
                     "kernel_columns": KERNEL_COLUMNS, "peak_rss_measured": peak_ok},
        "results": [{
            "case": r.case,
            "implementation": r.implementation,
            "n": r.n,
            "shape": list(r.shape),
            "dtype": r.dtype,
            "seconds_best": r.best,
            "seconds_all": r.seconds,
            "elements_per_second": r.rate,
            "x_numpy": r.x_numpy,
            "x_fastinit_numba": r.x_numba,
            "peak_rss_above_output_bytes": r.peak_bytes,
            "peak_rss_above_output_mib": (None if r.peak_bytes is None
                                          else r.peak_bytes / MiB),
            "note": r.note,
            "skipped": r.skipped or None,
            "error": r.error or None,
        } for r in results],
    }


PLOT_MISSING = ("--plot needs matplotlib, which is not installed: pip install matplotlib "
                 "(or pip install \"fastinit-ml[bench]\")")


def write_plot(results: Sequence[Result], path: str | os.PathLike[str], *,
               title: str | None = None) -> str | os.PathLike[str]:
    """Write ``results`` (from :func:`run`) as a PNG bar chart to ``path``.

    One group of bars per case, one bar per implementation (the same colour for
    an implementation in every case), elements/s on a log scale; rows without a
    rate (skipped or failed) have no bar. Matplotlib is imported here, and the
    figure is drawn with the Agg renderer without ``pyplot``.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(PLOT_MISSING) from exc
    cases: list[str] = []
    labels: dict[str, str] = {}
    names: list[str] = []
    for r in results:
        if r.case not in labels:
            cases.append(r.case)
            labels[r.case] = _case_label(r)
        if r.implementation not in names:
            names.append(r.implementation)
    rates = {(r.case, r.implementation): r.rate for r in results if r.rate}
    groups = [[r.implementation for r in results if r.case == case and r.rate]
              for case in cases]  # each case's rows, in the table's order
    width = 0.8 / max([1] + [len(g) for g in groups])
    fig = Figure(figsize=(max(6.4, 1.5 + 0.25 * len(rates)), 4.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colour = {name: f"C{i % 10}" for i, name in enumerate(names)}
    labelled: set[str] = set()
    for i, (case, group) in enumerate(zip(cases, groups)):
        for j, name in enumerate(group):  # the case's bars, centred on its tick
            ax.bar(i + (j - (len(group) - 1) / 2) * width, rates[(case, name)], width=width,
                   color=colour[name], label=None if name in labelled else name)
            labelled.add(name)
    ax.set_yscale("log")
    ax.set_xticks(range(len(cases)), [labels[c] for c in cases])
    ax.set_ylabel("elements / s (log scale)")
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.set_axisbelow(True)
    if title:
        ax.set_title(title, fontsize="medium")
    if rates:
        ax.legend(fontsize="small", ncols=min(len(names), 4), loc="upper center",
                  bbox_to_anchor=(0.5, -0.1))
    fig.savefig(path, format="png", dpi=120)
    return path


def plot_title(results: Sequence[Result], info: dict[str, Any], *, size: int, dtype: str,
               repeat: int, threads: int) -> str:
    n = f"n = {size:,} " if any(r.case in FLAT_CASES for r in results) else ""
    return (f"fastinit bench: {n}{dtype}, best of {repeat}, threads = {threads}\n"
            f"{info['cpu_model']}")


