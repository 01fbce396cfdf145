"""Philox4x32-10 against Random123's known-answer vectors, on every code path."""

import numpy as np
import pytest

from fastinit import random as fr, stream

from helpers import HAVE_NUMBA, KAT, KAT_IDS, SHARED_DATA, read_kat

KAT_FILE = SHARED_DATA / "philox4x32-10.kat"


def test_vectors_match_the_shared_file():
    """tests/data holds a copy of the project's shared known-answer file."""
    if not KAT_FILE.exists():
        pytest.skip(f"{KAT_FILE} not present; the copy in tests/data is still tested")
    assert read_kat(KAT_FILE) == KAT


@pytest.mark.parametrize("counter, key, expected", KAT, ids=KAT_IDS)
def test_public_function(counter, key, expected):
    out = fr.philox4x32_10(np.array(counter, dtype=np.uint32), np.array(key, dtype=np.uint32))
    assert out.dtype == np.uint32
    assert out.shape == (4,)
    assert tuple(int(w) for w in out) == expected


def test_public_function_vectorised_and_broadcast():
    counters = np.array([c for c, _, _ in KAT], dtype=np.uint32)
    keys = np.array([k for _, k, _ in KAT], dtype=np.uint32)
    expected = np.array([e for _, _, e in KAT], dtype=np.uint32)
    np.testing.assert_array_equal(fr.philox4x32_10(counters, keys), expected)
    # one key broadcast against a batch of counters (nested batch dims)
    batch = np.array([[KAT[2][0]] * 3] * 2, dtype=np.uint32)
    out = fr.philox4x32_10(batch, KAT[2][1])
    assert out.shape == (2, 3, 4)
    assert (out == np.array(KAT[2][2], dtype=np.uint32)).all()


@pytest.mark.parametrize("counter, key, expected", KAT, ids=KAT_IDS)
def test_stream_philox_block_scalars(counter, key, expected):
    keys = stream.key_schedule(*key)
    words = stream.philox_block(*(np.uint32(c) for c in counter), keys)
    assert tuple(int(w) for w in words) == expected


def test_stream_philox_block_arrays():
    """The NumPy backend's use: philox_block on arrays of counters under one key."""
    for counter, key, expected in KAT:
        c = [np.full(5, w, dtype=np.uint32) for w in counter]
        words = stream.philox_block(*c, stream.key_schedule(*key))
        for w, e in zip(words, expected):
            assert np.asarray(w).dtype == np.uint32
            assert (np.asarray(w) == e).all()


def test_numpy_backend_words_use_counter_layout():
    """numpy_backend._words(blocks, round) is philox((lo32(b), hi32(b), round, 0))."""
    from fastinit.backends import numpy_backend

    key = (0xA4093822, 0x299F31D0)
    keys = stream.key_schedule(*key)
    blocks = np.array([0, 1, 0xFFFFFFFF, 0x1_2345_6789, (1 << 60) - 1], dtype=np.uint64)
    got = np.stack(numpy_backend._words(blocks, 7, keys), axis=-1)
    counters = np.stack([blocks & 0xFFFFFFFF, blocks >> np.uint64(32),
                         np.full(blocks.shape, 7, np.uint64), np.zeros(blocks.shape, np.uint64)],
                        axis=-1).astype(np.uint32)
    np.testing.assert_array_equal(got, fr.philox4x32_10(counters, key))


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_numba_compiled_philox_block():
    """stream.philox_block as the Numba kernels compile it (registered jitable there)."""
    import numba

    from fastinit.backends.numba import _math  # noqa: F401  (registers the stream functions)

    @numba.njit
    def philox_all(counters, key_schedules, out):
        for i in range(counters.shape[0]):
            w = stream.philox_block(counters[i, 0], counters[i, 1], counters[i, 2],
                                    counters[i, 3], key_schedules[i])
            for j in range(4):
                out[i, j] = w[j]

    counters = np.array([c for c, _, _ in KAT], dtype=np.uint32)
    schedules = np.stack([stream.key_schedule(*k) for _, k, _ in KAT])
    out = np.zeros((len(KAT), 4), dtype=np.uint32)
    philox_all(counters, schedules, out)
    np.testing.assert_array_equal(out, np.array([e for _, _, e in KAT], dtype=np.uint32))


def test_key_schedule_is_the_weyl_sequence():
    keys = stream.key_schedule(0xFFFFFFFF, 0x12345678)
    for r in range(10):
        assert int(keys[2 * r]) == (0xFFFFFFFF + r * 0x9E3779B9) % 2**32
        assert int(keys[2 * r + 1]) == (0x12345678 + r * 0xBB67AE85) % 2**32
