"""What identifies a Numba kernel, and how kernels cut work (no Numba imported here).

A kernel is compiled for one job: ``("fill", (kind, wide, out_kind,
proposal))`` (``proposal`` 0 unless the truncated normal) or ``("copy",
itemsize)``; :func:`job_name` is its name in the disk cache. A fill kernel
works in tasks of :data:`TASK` consecutive elements of one run, the tiled
copy in square tiles of :data:`COPY_TILE`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeAlias, Union

from ... import stream

if TYPE_CHECKING:
    #: A fill kernel's specialisation: ``(kind, wide, out_kind, proposal)``.
    FillSpec: TypeAlias = tuple[int, bool, int, int]
    #: A kernel to make: ``("fill", FillSpec)`` or ``("copy", itemsize)``.
    Job: TypeAlias = Union[tuple[Literal["fill"], FillSpec], tuple[Literal["copy"], int]]

TASK = 8192
COPY_TILE = 64
OUT_NATIVE, OUT_FLOAT16, OUT_BFLOAT16 = 0, 1, 2
OUT_NAMES = {OUT_NATIVE: "native", OUT_FLOAT16: "f16", OUT_BFLOAT16: "bf16"}
KIND_NAMES = {stream.UNIFORM: "uniform", stream.NORMAL: "normal",
              stream.TRUNCATED_NORMAL: "truncnorm"}
PROPOSAL_NAMES = {stream.PROPOSAL_NORMAL: "normal", stream.PROPOSAL_UNIFORM: "uniform",
                  stream.PROPOSAL_EXPONENTIAL: "exponential"}


def fill_job(kind: int, wide: bool, out_kind: int,
             proposal: int = 0) -> tuple[Literal["fill"], FillSpec]:
    """The job of a fill kernel, normalised (the proposal counts for the truncated normal)."""
    return "fill", (kind, bool(wide), out_kind,
                    proposal if kind == stream.TRUNCATED_NORMAL else 0)


def kernel_name(kind: int, wide: bool, out_kind: int, proposal: int = 0) -> str:
    name = f"fill_{KIND_NAMES[kind]}_{'f64' if wide else 'f32'}_{OUT_NAMES[out_kind]}"
    if kind == stream.TRUNCATED_NORMAL:
        name += f"_{PROPOSAL_NAMES[proposal]}"
    return name


def job_name(job: Job) -> str:
    if job[0] == "fill":
        return kernel_name(*job[1])
    return f"copy_2d_u{8 * job[1]}"


def copy_tiles(rows: int, cols: int) -> int:
    return ((rows + COPY_TILE - 1) // COPY_TILE) * ((cols + COPY_TILE - 1) // COPY_TILE)
