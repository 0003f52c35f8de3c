"""The examples in the installed package's docstrings run and show what they claim."""
import doctest
import importlib
import pkgutil

import pytest

import fastcnn

MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(fastcnn.__path__, "fastcnn.")
                 if ".bench" not in name)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    if name == "fastcnn.viz":
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
