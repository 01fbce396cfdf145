"""The NumPy backend: the stream, vectorised over blocks, in bounded chunks.

It needs nothing but NumPy and serves as the fallback when Numba is absent.
Work is cut into pieces of at most ``PIECE_BLOCKS`` Philox blocks, so its
temporary memory is a few MiB whatever the size of the output.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .. import stream

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    from . import Distribution

    U64Array = npt.NDArray[np.uint64]
    #: The four words of a round of each block (uint32 arrays).
    Words = tuple[npt.NDArray[np.uint32], ...]
    #: A function of the stream from words to the values of each lane (arrays).
    LaneFunction = Callable[..., tuple[Any, ...]]

PIECE_BLOCKS = 1 << 14


def fill(dist: Distribution, key: tuple[int, int], out: npt.NDArray[Any],
         run_starts: npt.ArrayLike, run_length: int) -> None:
    """Fill ``out`` with runs of the stream (see ``fastinit.backends``)."""
    keys = stream.key_schedule(*key)
    lanes = stream.LANES_F64 if dist.wide else stream.LANES_F32
    starts = np.asarray(run_starts, dtype=np.int64)
    piece = PIECE_BLOCKS * lanes
    if run_length >= piece:
        for r, start in enumerate(starts.tolist()):
            for c in range(0, run_length, piece):
                n = min(piece, run_length - c)
                base = r * run_length + c
                _fill_runs(dist, keys, lanes, out[base:base + n],
                           np.array([start + c], dtype=np.int64), n)
        return
    group = max(1, piece // max(run_length, 1))
    for g in range(0, len(starts), group):
        some = starts[g:g + group]
        _fill_runs(dist, keys, lanes, out[g * run_length:(g + len(some)) * run_length],
                   some, run_length)


_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


def _words(blocks: U64Array, round_: int, keys: npt.NDArray[np.uint32]) -> Words:
    """The four words of round ``round_`` of each block (uint64 block indices).

    ``stream.philox_block`` computed on uint64 arrays holding 32-bit values,
    in place: the same rounds without a cast per operation.
    """
    c0 = blocks & _MASK32
    c1 = blocks >> _SHIFT32
    c2 = np.full_like(c0, round_)
    c3 = np.zeros_like(c0)
    p0 = np.empty_like(c0)
    p1 = np.empty_like(c0)
    for r in range(stream.PHILOX_ROUNDS):
        np.multiply(c0, stream.PHILOX_M0, out=p0)
        np.multiply(c2, stream.PHILOX_M1, out=p1)
        # (c0, c1, c2, c3) <- (hi(p1) ^ c1 ^ k0, lo(p1), hi(p0) ^ c3 ^ k1, lo(p0))
        np.right_shift(p1, _SHIFT32, out=c0)
        np.bitwise_xor(c0, c1, out=c0)
        np.bitwise_xor(c0, np.uint64(keys[2 * r]), out=c0)
        np.bitwise_and(p1, _MASK32, out=c1)
        np.right_shift(p0, _SHIFT32, out=c2)
        np.bitwise_xor(c2, c3, out=c2)
        np.bitwise_xor(c2, np.uint64(keys[2 * r + 1]), out=c2)
        np.bitwise_and(p0, _MASK32, out=c3)
    return tuple(c.astype(np.uint32) for c in (c0, c1, c2, c3))


def _lanes(fn: LaneFunction, words: Words) -> npt.NDArray[Any]:
    """Values of all lanes, shape (blocks, lanes)."""
    return np.stack(fn(*words), axis=-1)


def _log_lanes(wide: bool) -> LaneFunction:
    if wide:
        return lambda w0, w1, w2, w3: (stream.log_of_uniform_f64(w0, w1),
                                       stream.log_of_uniform_f64(w2, w3))
    return lambda *ws: tuple(stream.log_of_uniform_f32(w) for w in ws)


def _candidates(dist: Distribution, blocks: U64Array, attempt: int,
                keys: npt.NDArray[np.uint32], ftype: type[np.floating[Any]],
                ) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_] | None]:
    """Standardized values (and acceptance) of every lane of ``blocks``; shape (n, lanes)."""
    wide = dist.wide
    if dist.kind == stream.UNIFORM:
        fn = stream.uniform_lanes_f64 if wide else stream.uniform_lanes_f32
        return _lanes(fn, _words(blocks, 0, keys)), None
    normal = stream.normal_lanes_f64 if wide else stream.normal_lanes_f32
    if dist.kind == stream.NORMAL:
        return _lanes(normal, _words(blocks, 0, keys)), None
    first = _words(blocks, 2 * attempt, keys)
    if dist.proposal == stream.PROPOSAL_NORMAL:
        z_normal, u1, log_u1, log_u2 = _lanes(normal, first), None, None, None
    else:
        uniform = stream.uniform_lanes_f64 if wide else stream.uniform_lanes_f32
        z_normal = None
        u1 = _lanes(uniform, first)
        log_u1 = _lanes(_log_lanes(wide), first)
        log_u2 = _lanes(_log_lanes(wide), _words(blocks, 2 * attempt + 1, keys))
    return stream.truncated_normal_candidate(
        dist.proposal, z_normal, u1, log_u1, log_u2, ftype(dist.alpha), ftype(dist.beta),
        ftype(dist.rate), ftype(dist.m2), ftype(0.0), ftype(2.0))


def _fill_runs(dist: Distribution, keys: npt.NDArray[np.uint32], lanes: int,
               out: npt.NDArray[Any], starts: npt.NDArray[np.int64], run_length: int) -> None:
    ftype = np.float64 if dist.wide else np.float32
    n_runs = len(starts)
    n_blocks = (run_length + lanes - 2) // lanes + 1  # enough for any alignment
    first = starts // lanes
    blocks = (first[:, None] + np.arange(n_blocks, dtype=np.int64)).astype(np.uint64)
    z, ok = _candidates(dist, blocks.reshape(-1), 0, keys, ftype)
    z = z.reshape(n_runs, -1)
    if n_runs == 1:  # one run: a slice, no gather
        head = int(starts[0] % lanes)
        z = z[:, head:head + run_length]
        ok = None if ok is None else ok.reshape(1, -1)[:, head:head + run_length]
    else:
        cols = (starts % lanes)[:, None] + np.arange(run_length, dtype=np.int64)
        z = np.take_along_axis(z, cols, axis=1)
        ok = None if ok is None else np.take_along_axis(ok.reshape(n_runs, -1), cols, axis=1)
    if ok is not None:
        rows, columns = np.nonzero(~ok)
        if rows.size:
            z[rows, columns] = _resample(dist, keys, lanes, starts[rows] + columns, ftype)
    # x = loc + scale * (sign * z), clamped: the stream's output stage, in place.
    np.multiply(z, ftype(dist.sign), out=z)
    np.multiply(z, ftype(dist.scale), out=z)
    np.add(z, ftype(dist.loc), out=z)
    np.clip(z, ftype(dist.lo), ftype(dist.hi), out=z)
    np.copyto(out.reshape(z.shape), z, casting="unsafe")


def _resample(dist: Distribution, keys: npt.NDArray[np.uint32], lanes: int,
              index: npt.NDArray[np.int64], ftype: type[np.floating[Any]],
              ) -> npt.NDArray[np.floating[Any]]:
    """Attempts 1, 2, ... for the rejected elements at global ``index``."""
    result = np.empty(index.size, dtype=ftype)
    pending = np.arange(index.size)
    blocks = (index // lanes).astype(np.uint64)
    lane = (index % lanes)[:, None]
    for attempt in range(1, stream.MAX_ATTEMPTS):
        z, ok = _candidates(dist, blocks[pending], attempt, keys, ftype)
        z = np.take_along_axis(z, lane[pending], axis=1)[:, 0]
        assert ok is not None  # the truncated normal's candidates carry their acceptance
        ok = np.take_along_axis(ok, lane[pending], axis=1)[:, 0]
        last = attempt == stream.MAX_ATTEMPTS - 1
        done = np.ones_like(ok) if last else ok
        result[pending[done]] = z[done]
        pending = pending[~done]
        if not pending.size:
            break
    return result
