"""Spec files: a TOML spec where Python has no TOML reader is a SpecError naming the file."""

import sys

import pytest

from fastinit.materialize import _spec


def test_toml_spec_before_python_311_is_a_spec_error(tmp_path, monkeypatch):
    # tomllib is Python 3.11's; on 3.10 (requires-python) the import itself failed with a
    # bare ModuleNotFoundError.
    path = tmp_path / "spec.toml"
    path.write_text('seed = 5\n[tensors.a]\nshape = [4]\ninitializer = "zeros"\n')
    monkeypatch.setattr(sys, "version_info", (3, 10, 14, "final", 0))
    with pytest.raises(_spec.SpecError,
                       match=r"TOML specs need Python 3\.11.*Received: .*spec\.toml"):
        _spec.load_spec(path)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is Python 3.11's")
def test_toml_spec_reads_on_python_311(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text('seed = 5\n[tensors.a]\nshape = [4]\ninitializer = "zeros"\n')
    assert _spec.load_spec(path) == {"seed": 5, "tensors": {"a": {"shape": [4],
                                                                   "initializer": "zeros"}}}
