"""docs/stream.md is enough to re-implement the stream.

``docs/reimplementation.py`` was written from the page alone (it does not
import fastinit). These tests check that its values equal the library's bit
for bit. They also check that the worked example printed on the page matches
the library (golden values: changing them means bumping STREAM_VERSION).
"""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import fastinit
from fastinit import random as frandom
from fastinit import stream as fstream

DOCS = Path(__file__).resolve().parents[2] / "docs"


def _load_reimplementation():
    spec = importlib.util.spec_from_file_location("fastinit_doc_reimplementation",
                                                  DOCS / "reimplementation.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_reimplementation()

# (seed, stream, offset, n)
CONFIGS = [
    (0, 0, 0, 256),
    (1, 0, 0, 128),
    (0, 1, 5, 128),
    (12345, 7, 1001, 130),
    (2**64 - 1, 2**64 - 1, 3, 64),
    (2**40 + 17, 2**33 + 5, 2**41 + 2, 64),  # block index above 2**32: counter word 1 used
]


def _bits(values):
    return np.asarray(values, dtype=np.float32).view(np.uint32)


# -- Philox and key derivation -------------------------------------------------------

KAT = [  # Random123 known-answer vectors, as printed in docs/stream.md
    ((0x00000000, 0x00000000, 0x00000000, 0x00000000), (0x00000000, 0x00000000),
     (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF),
     (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", KAT)
def test_reimplemented_philox_matches_known_answers(counter, key, expected):
    assert ref.philox(counter, key) == expected
    assert tuple(int(w) for w in frandom.philox4x32_10(list(counter), list(key))) == expected


def test_reimplemented_philox_matches_library():
    rng = np.random.default_rng(20240601)
    counters = rng.integers(0, 2**32, size=(64, 4), dtype=np.uint64).astype(np.uint32)
    keys = rng.integers(0, 2**32, size=(64, 2), dtype=np.uint64).astype(np.uint32)
    expected = frandom.philox4x32_10(counters, keys)
    for c, k, e in zip(counters.tolist(), keys.tolist(), expected.tolist()):
        assert ref.philox(tuple(c), tuple(k)) == tuple(e)


@pytest.mark.parametrize("seed, stream", [(c[0], c[1]) for c in CONFIGS])
def test_reimplemented_key_matches_library(seed, stream):
    assert ref.derive_key(seed, stream) == fstream.derive_key(seed, stream)


# -- elements ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed, stream, offset, n", CONFIGS)
def test_reimplemented_uniform_matches_library(seed, stream, offset, n):
    got = frandom.uniform(n, seed=seed, stream=stream, offset=offset, backend="numpy")
    want = [ref.uniform_f32(seed, stream, offset + i) for i in range(n)]
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("seed, stream, offset, n", CONFIGS)
def test_reimplemented_normal_matches_library(seed, stream, offset, n):
    got = frandom.normal(n, seed=seed, stream=stream, offset=offset, backend="numpy")
    want = [ref.normal_f32(seed, stream, offset + i) for i in range(n)]
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("low, high", [(-3.7, 0.1), (0.1, 0.30000001), (-1e-3, 1e-3),
                                       (1.0, 1.0 + 2**-20)])
def test_reimplemented_uniform_output_stage(low, high):
    n = 200
    got = frandom.uniform(n, low, high, seed=3, stream=2, offset=11, backend="numpy")
    want = [ref.uniform_f32(3, 2, 11 + i, low, high) for i in range(n)]
    np.testing.assert_array_equal(_bits(got), _bits(want))


@pytest.mark.parametrize("mean, std", [(0.5, 0.02), (-3.0, 7.5), (1e-3, 1e-30)])
def test_reimplemented_normal_output_stage(mean, std):
    n = 200
    got = frandom.normal(n, mean, std, seed=9, stream=4, offset=6, backend="numpy")
    want = [ref.normal_f32(9, 4, 6 + i, mean, std) for i in range(n)]
    np.testing.assert_array_equal(_bits(got), _bits(want))


def test_reimplemented_region_uses_global_flat_index():
    shape, index, offset = (7, 13), (slice(2, 5), slice(3, 11, 2)), 40
    got = frandom.normal(shape, seed=5, index=index, offset=offset, backend="numpy")
    rows, cols = range(*index[0].indices(7)), range(*index[1].indices(13))
    want = [[ref.normal_f32(5, 0, offset + r * 13 + c) for c in cols] for r in rows]
    np.testing.assert_array_equal(_bits(got), _bits(want))


# -- the worked example on the page (golden values) -------------------------------------

GOLDEN_F32 = {
    "uniform": ["3E4AC034", "3F0F8A8E", "3DB30CC0", "3EFF03AA"],
    "normal": ["BFD5CEC5", "BF2B8258", "C00D4833", "3CDAC1CE"],
}
GOLDEN_F64 = {
    "uniform": ["3FC95806D8F8A8EC", "3FB66198AFF03AA8", "3FCC435C0F7538F0", "3FBBC2E941B820E8"],
    "normal": ["3FF292FEA125BF94", "3FE6BDB4DCFB77B7", "3FEFC7191F82C4CD", "3FE9C4F2787E46D1"],
}
GOLDEN_TRUNCATED = {
    (-2.0, 2.0): "BFD5CEC5 BF2B8258 BE46CDF8 3CDAC1CE 3FD973F4 BEBC0429 3FFE9403 3F32B810",
    (2.0, 3.0): "402AEEA8 400F5659 40161686 40127A35 40280AC8 4000E9EB 403AE45F 400B4DD5",
    (-1.0, -0.5): "BF195806 BF47C547 BF0B30CC BF3FC0EA BF1C435C BF7BA9C8 BF0DE174 BF06E084",
}
GOLDEN_KEYS = {
    (0, 0): (0x105C452E, 0xFB9AF2E1),
    (1, 0): (0x7C58F8ED, 0x2C8EFEC9),
    (0, 1): (0x5A4C6841, 0xF810E8C1),
    (12345, 7): (0xC2E481ED, 0x1A82A22C),
    (2**64 - 1, 2**64 - 1): (0x6B9570A8, 0xA36DD342),
}


def _hex(values, width):
    kind = np.uint32 if width == 8 else np.uint64
    return [f"{int(v):0{width}X}" for v in np.asarray(values).view(kind)]


@pytest.fixture(scope="module")
def page():
    return (DOCS / "stream.md").read_text(encoding="utf-8")


def test_worked_example_matches_library_and_page(page):
    assert fastinit.STREAM_VERSION == 1
    assert "version 1" in page.splitlines()[0]
    for name, fn in (("uniform", frandom.uniform), ("normal", frandom.normal)):
        for backend in ("numpy", "auto"):
            assert _hex(fn(4, seed=0, backend=backend), 8) == GOLDEN_F32[name]
            assert _hex(fn(4, seed=0, dtype="float64", backend=backend), 16) == GOLDEN_F64[name]
        for value in GOLDEN_F32[name] + GOLDEN_F64[name]:
            assert f"0x{value}" in page
    for (a, b), words in GOLDEN_TRUNCATED.items():
        for backend in ("numpy", "auto"):
            got = frandom.truncated_normal(8, a=a, b=b, seed=0, backend=backend)
            assert " ".join(_hex(got, 8)) == words
        assert " ".join(f"0x{w}" for w in words.split()) in page


def test_worked_example_keys_match_library_and_page(page):
    for (seed, stream), key in GOLDEN_KEYS.items():
        assert fstream.derive_key(seed, stream) == key
        assert ref.derive_key(seed, stream) == key
        assert f"(0x{key[0]:08X}, 0x{key[1]:08X})" in page


def test_page_constants_match_stream_module(page):
    """Every constant of stream.py appears on the page with its exact bit pattern."""
    f32 = [fstream._F32_2M24, fstream._F32_SQRT2, fstream._F32_PIO4, fstream._F32_LN2_HI,
           fstream._F32_LN2_LO, *fstream._F32_LG, *fstream._F32_SIN, *fstream._F32_COS]
    f64 = [fstream._F64_2M50, fstream._F64_SQRT2, fstream._F64_PIO4, fstream._F64_LN2_HI,
           fstream._F64_LN2_LO, *fstream._F64_LG, *fstream._F64_SIN, *fstream._F64_COS]
    for value in _hex(np.array(f32, dtype=np.float32), 8):
        assert f"`0x{value}`" in page
    for value in _hex(np.array(f64, dtype=np.float64), 16):
        assert f"`0x{value}`" in page
    for name in ("PHILOX_M0", "PHILOX_M1", "PHILOX_W0", "PHILOX_W1", "KEY_TAG"):
        assert f"0x{int(getattr(fstream, name)):08X}" in page
    assert f"MAX_ATTEMPTS = {fstream.MAX_ATTEMPTS}" in page
    assert fstream.PHILOX_ROUNDS == 10 and fstream.LANES_F32 == 4 and fstream.LANES_F64 == 2
    assert math.isclose(fstream._F64_2M53, 2.0**-53)
