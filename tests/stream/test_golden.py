"""Golden values: fixed outputs of the stream, so that any change of it fails loudly.

These bit patterns were computed once from the implementation at stream
version 1. CHANGING ANY OF THEM CHANGES GENERATED VALUES: it requires bumping
``fastinit.STREAM_VERSION`` (and a changelog entry), never just editing them
here to make a test pass.

Each entry holds elements 0..5 of a tensor of shape (6,), then the last three
elements of a (2**30, 2**30) tensor, produced on their own with ``index=``.
"""

import numpy as np
import pytest

import fastinit

from helpers import DTYPES, draw

SEED, STREAM = 12345678901234567890, 3
STREAM_VERSION = 1

CASES = {
    "uniform": ("uniform", dict(low=-1.0, high=2.0)),
    "normal": ("normal", dict(mean=0.5, std=2.0)),
    "trunc_sym_1sigma": ("truncated_normal", dict(mean=0.5, std=2.0, alpha=-1.0, beta=1.0)),
    "trunc_sym_2sigma": ("truncated_normal", dict(mean=0.5, std=2.0, alpha=-2.0, beta=2.0)),
    "trunc_tail_8_9": ("truncated_normal", dict(mean=0.5, std=2.0, alpha=8.0, beta=9.0)),
    "trunc_narrow_1e-4": ("truncated_normal",
                          dict(mean=0.5, std=2.0, alpha=1.0, beta=1.0 + 1e-4)),
    "trunc_neg_inf_6": ("truncated_normal",
                        dict(mean=0.5, std=2.0, alpha=float("-inf"), beta=-6.0)),
}

# fmt: off
GOLDEN = {
    "uniform": {
        "float16": "3C1E 3D2B 2CE1 3E1D 3D09 3FFF B233 2D21 BAF3",
        "bfloat16": "3F84 3FA5 3D9C 3FC4 3FA1 3FFF BE46 3DA4 BF5E",
        "float32": "3F83BF32 3FA55366 3D9C2960 3FC3A2B0 3FA11EDE 3FFFFD10 BE465B48 3DA41520 BF5E59B3",
        "float64": "3FF077E652954D9C 3FB3852E10E8ABF0 3FF423DBF9FFF442 3FDF203739487954 BFEBE00DE2E01274 3FEAA836B7077DD4 BFE34D86F6F6D728 3FF4E7F7F9953748 BFDE856D2A960B66",
    },
    "normal": {
        "float16": "393B BD0C 4027 BF90 4003 37FF 441E 4281 3D1C",
        "bfloat16": "3F27 BFA2 4005 BFF2 4000 3F00 4084 4050 3FA3",
        "float32": "3F2766F8 BFA18147 4004E9FC BFF1FDF4 40006F1A 3EFFDAF2 4083BE78 405011C1 3FA377C0",
        "float64": "BFF52965EB793405 4005E8E30477A40A BFFD5857DA8CDC52 3FE223214C572BF3 C0072B393059BB68 C002C4B2338B85C3 3FF498052AB61042 3FF84ECA884075AA 4003D8E2E02D2E3C",
    },
    "trunc_sym_1sigma": {
        "float16": "393B BD0C 4027 B11C 4003 37FF 395A BA59 3D1C",
        "bfloat16": "3F27 BFA2 4005 BE23 4000 3F00 3F2B BF4B 3FA3",
        "float32": "3F2766F8 BFA18147 4004E9FC BE2377B0 40006F1A 3EFFDAF2 3F2B36B4 BF4B2F98 3FA377C0",
        "float64": "BFF52965EB793405 3FEAA3368214D9C8 3FF7588147F8F50C 3FE223214C572BF3 3FE38789DCD849EC 3FB23A93C29FCC1C 3FF498052AB61042 3FF84ECA884075AA 4003D8E2E02D2E3C",
    },
    "trunc_sym_2sigma": {
        "float16": "393B BD0C 4027 BF90 4003 37FF 441E 4281 3D1C",
        "bfloat16": "3F27 BFA2 4005 BFF2 4000 3F00 4084 4050 3FA3",
        "float32": "3F2766F8 BFA18147 4004E9FC BFF1FDF4 40006F1A 3EFFDAF2 4083BE78 405011C1 3FA377C0",
        "float64": "BFF52965EB793405 4005E8E30477A40A BFFD5857DA8CDC52 3FE223214C572BF3 C0072B393059BB68 C002C4B2338B85C3 3FF498052AB61042 3FF84ECA884075AA 4003D8E2E02D2E3C",
    },
    "trunc_tail_8_9": {
        "float16": "4C26 4C24 4C30 4C23 4C24 4C20 4C35 4C30 4C51",
        "bfloat16": "4185 4185 4186 4184 4185 4184 4187 4186 418A",
        "float32": "4184C520 418487D2 418604E9 4184563D 41848F1A 41840004 41869688 4186031A 418A2928",
        "float64": "4030C1A8D63EF5EA 403094ECC1060041 4030AAF527C2D6AF 403080939A0A426A 40311AB00451B598 4030DEDBD81B070D 4030D3D19EF7AD7B 4030A719CED5B3EF 4030C265EC585492",
    },
    "trunc_narrow_1e-4": {
        "float16": "4100 4100 4100 4100 4100 4100 4100 4100 4100",
        "bfloat16": "4020 4020 4020 4020 4020 4020 4020 4020 4020",
        "float32": "40200238 40200281 4020012D 402002C3 40200278 40200346 402000E1 4020012E 40200025",
        "float64": "40040046ED9F384C 400400259E2152BA 4004004EF2FEB852 40040033F38E86C7 40040004815FD58A 4004004011B5B006 4004000DDE6211CA 400400509F670725 4004001248AD088E",
    },
    "trunc_neg_inf_6": {
        "float16": "C9D0 C9CB C9EB C9C7 C9CC C9C0 C9F7 C9EA CA42",
        "bfloat16": "C13A C139 C13D C139 C139 C138 C13F C13D C148",
        "float32": "C13A07B3 C1396614 C13D52C9 C138E35B C1397947 C138000A C13ED2B3 C13D4E04 C1483E04",
        "float64": "C027AD1AC508E908 C027372A87ED4F35 C0277140DE716BB4 C02701852302206F C02897D15F1E848A C027FA15DB8554AC C027DCFACF8BF504 C0276715D441F775 C027AF0D46BC877B",
    },
}
# fmt: on

UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def hex_words(x):
    width = 2 * x.dtype.itemsize
    return " ".join(f"{int(v):0{width}X}" for v in x.view(UINT[x.dtype.itemsize]))


def test_stream_version_matches_golden_values():
    assert fastinit.STREAM_VERSION == STREAM_VERSION, (
        "the stream version changed: regenerate GOLDEN for the new version")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES))
def test_golden(case, dtype, backend):
    name, params = CASES[case]
    kw = dict(seed=SEED, stream=STREAM, dtype=dtype, backend=backend, **params)
    head = draw(name, 6, **kw)
    tail = draw(name, (2**30, 2**30), index=(2**30 - 1, slice(2**30 - 3, None)), **kw)
    got = hex_words(np.concatenate([head, tail]))
    assert got == GOLDEN[case][dtype], (
        f"{case}/{dtype}: the stream changed. If intended, bump fastinit.STREAM_VERSION.")
