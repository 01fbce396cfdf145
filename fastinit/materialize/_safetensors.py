"""The safetensors layout: files of at most ``max_shard_size``, their headers, the index."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, TypeVar

from ._writer import ALIGN, TensorLike

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

_T = TypeVar("_T", bound=TensorLike)

__all__ = ["SAFETENSORS_DTYPES", "INDEX_SUFFIX", "MAX_HEADER_BYTES", "plan_files", "header",
           "index", "shard_pattern"]

#: numpy dtype name -> safetensors dtype code.
SAFETENSORS_DTYPES = {
    "float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64",
    "int8": "I8", "int16": "I16", "int32": "I32", "int64": "I64",
    "uint8": "U8", "uint16": "U16", "uint32": "U32", "uint64": "U64", "bool": "BOOL",
}
INDEX_SUFFIX = ".safetensors.index.json"
#: safetensors refuses headers larger than this (``MAX_HEADER_SIZE`` in its Rust crate).
MAX_HEADER_BYTES = 100_000_000


def plan_files(tensors: Iterable[_T], max_shard_size: int | None = None,
               prefix: str = "model") -> list[tuple[str, list[_T]]]:
    """Split tensors (in order) into files of at most ``max_shard_size`` bytes of data.

    A tensor is never split; one larger than the limit gets a file of its own.
    Returns a list of ``(file_name, [tensor, ...])``; tensors need ``nbytes``.
    """
    groups: list[list[_T]] = []
    current: list[_T] = []
    size = 0
    for t in tensors:
        if current and max_shard_size is not None and size + t.nbytes > max_shard_size:
            groups.append(current)
            current, size = [], 0
        current.append(t)
        size += t.nbytes
    if current or not groups:
        groups.append(current)
    if len(groups) == 1:
        return [(f"{prefix}.safetensors", groups[0])]
    n = len(groups)
    return [(f"{prefix}-{i + 1:05d}-of-{n:05d}.safetensors", g) for i, g in enumerate(groups)]


def shard_pattern(prefix: str) -> re.Pattern[str]:
    """The file names of the safetensors files of a checkpoint with ``prefix``."""
    return re.compile(re.escape(prefix) + r"(-[0-9]{5}-of-[0-9]{5})?\.safetensors")


def header(tensors: Sequence[TensorLike], metadata: Mapping[str, object] | None = None
           ) -> bytes:
    """The header bytes (length prefix included) of a file holding ``tensors`` in order.

    Tensors need ``name``, ``dtype``, ``shape`` and ``nbytes``. The JSON is padded with
    spaces (which the format allows) so that the data start at a multiple of
    :data:`~fastinit.materialize._writer.ALIGN` bytes: direct I/O writes them whole,
    and mmap readers find each file's data page-aligned.
    """
    head: dict[str, Any] = {}
    if metadata:
        head["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    start = 0
    for t in tensors:
        head[t.name] = {"dtype": SAFETENSORS_DTYPES[t.dtype.name], "shape": list(t.shape),
                        "data_offsets": [start, start + t.nbytes]}
        start += t.nbytes
    body = json.dumps(head, separators=(",", ":")).encode("utf-8")
    body += b" " * (-(8 + len(body)) % ALIGN)  # the data start on a block (and page) boundary
    if len(body) > MAX_HEADER_BYTES:
        raise ValueError(f"The safetensors header would take {len(body)} bytes, more than "
                         f"the format's limit of {MAX_HEADER_BYTES} (names too long or too "
                         "many tensors in one file). Received: a file of "
                         f"{len(tensors)} tensors")
    return len(body).to_bytes(8, "little") + body


def index(files: Sequence[tuple[str, Sequence[TensorLike]]],
          metadata: Mapping[str, Any] | None = None) -> str:
    """The ``*.safetensors.index.json`` text of a multi-file checkpoint."""
    total = sum(t.nbytes for _, group in files for t in group)
    data = {"metadata": {"total_size": total, **(metadata or {})},
            "weight_map": {t.name: name for name, group in files for t in group}}
    return json.dumps(data, indent=2) + "\n"

