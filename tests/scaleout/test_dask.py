"""fastinit.dask on the threaded scheduler and on a real distributed LocalCluster."""

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

import fastinit.initializers as fi  # noqa: E402
from fastinit import dask as fd  # noqa: E402
from fastinit.sharding import name_stream  # noqa: E402

from helpers import assert_bits_equal  # noqa: E402

SHAPE = (301, 207)
CHUNKINGS = [(301, 207), (100, 50), (1, 207), (64, (7, 200)), "auto"]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       memory_limit="600MiB", dashboard_address=None,
                                       env={"NUMBA_NUM_THREADS": "1"})
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_every_chunking_equals_memory_threaded(chunks):
    whole = fi.HeNormal(seed=4)(SHAPE, stream=7)
    x = fd.array("he_normal", SHAPE, chunks=chunks, seed=4, stream=7)
    assert_bits_equal(x.compute(scheduler="threads"), whole)


def test_names_dtypes_and_global_initializers():
    x = fd.array(fi.Orthogonal(seed=1), (40, 30), chunks=(16, 16), name="q")
    assert_bits_equal(x.compute(), fi.Orthogonal(seed=1)((40, 30), stream=name_stream("q")))
    y = fd.array("truncated_normal", (50, 3), chunks=7, dtype="bfloat16", seed=2)
    assert_bits_equal(y.compute().view(np.uint16),
                      fi.TruncatedNormal(seed=2)((50, 3), "bfloat16").view(np.uint16))
    z = fd.array("glorot_uniform", (4, 5), chunks=2, dtype="complex64", seed=2)
    assert_bits_equal(z.compute(), fi.GlorotUniform(seed=2)((4, 5), "complex64"))
    # same inputs, same graph name; another seed, another name
    assert fd.array("ones", (3,), 1).name == fd.array("ones", (3,), 1).name
    assert fd.array("he_normal", (3,), 1, seed=1).name != fd.array("he_normal", (3,), 1, seed=2).name
    with pytest.raises(TypeError):
        fd.array(lambda shape, dtype=None: np.zeros(shape), (3,))


@pytest.mark.parametrize("chunks", [(301, 207), (50, 64), (13, 207)])
def test_distributed_equals_memory(client, chunks):
    whole = fi.GlorotUniform(seed=9)(SHAPE, "float64", stream=3)
    x = fd.array("glorot_uniform", SHAPE, chunks=chunks, dtype="float64", seed=9, stream=3)
    assert_bits_equal(client.compute(x).result(), whole)
    t = fd.array(fi.TruncatedNormal(stddev=0.02, seed=1), SHAPE, chunks=chunks)
    assert_bits_equal(client.compute(t).result(), fi.TruncatedNormal(stddev=0.02, seed=1)(SHAPE))


def test_store_larger_than_worker_memory(client, tmp_path):
    # 1.2 GB of float32 through 2 workers of 600 MiB each, into a .npy memmap and into zarr.
    shape = (18_000, 16_384)
    x = fd.array("random_normal", shape, chunks=(1000, 16_384), seed=5)
    path = fd.store_npy(x, tmp_path / "big.npy")
    m = np.load(path, mmap_mode="r")
    assert m.shape == shape
    for rows in (slice(0, 3), slice(9_999, 10_002), slice(17_998, None)):
        want = fi.RandomNormal(seed=5)(shape, index=(rows,))
        assert_bits_equal(np.asarray(m[rows]), want)
    zarr = pytest.importorskip("zarr")
    small = fd.array("random_normal", (3000, 16_384), chunks=(500, 16_384), seed=5)
    small.to_zarr(str(tmp_path / "z.zarr"))
    z = zarr.open(str(tmp_path / "z.zarr"), mode="r")
    assert_bits_equal(z[2999:3000], fi.RandomNormal(seed=5)(shape, index=(slice(2999, 3000),)))
