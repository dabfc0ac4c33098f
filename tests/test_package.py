"""Tests for the `ktlite` package itself: lazy names and submodules found on disk."""

import importlib
import math
import pkgutil
import subprocess
import sys

import pytest

import ktlite
from ktlite._lazy import lazy_attributes


def test_every_public_module_on_disk_is_reachable_and_listed():
    names = [m.name for m in pkgutil.iter_modules(ktlite.__path__) if not m.name.startswith("_")]
    assert {"text", "saving", "labels", "predictor", "classifier"} <= set(names)
    for name in names:
        assert name in dir(ktlite)
        assert getattr(ktlite, name).__name__ == f"ktlite.{name}"


def test_unknown_and_private_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ktlite.nope
    with pytest.raises(AttributeError, match="no attribute '_hidden'"):
        ktlite._hidden


def test_importing_ktlite_imports_no_tensorflow():
    code = "import sys, ktlite; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("package", ["apps", "seq2seq", "tabular", "text", "vision"])
def test_task_packages_load_their_lazy_names_once_and_refuse_unknown_ones(package):
    module = importlib.import_module(f"ktlite.{package}")
    lazy = set(module._LAZY)
    assert lazy <= set(dir(module)) and lazy <= set(module.__all__)
    name = sorted(lazy)[0]
    value = getattr(module, name)
    assert value is getattr(importlib.import_module(module._LAZY[name]), name)
    assert vars(module)[name] is value  # cached: __getattr__ is not asked again
    with pytest.raises(AttributeError, match=f"'ktlite.{package}' has no attribute 'nope'"):
        module.nope


@pytest.mark.parametrize("package", ["apps", "seq2seq", "tabular", "text", "vision"])
def test_no_lazy_name_is_also_a_submodule_which_importing_would_put_in_its_place(package):
    # Importing `ktlite.text.pretrain` (the module) set `text.pretrain` to it before the
    # function was asked for: `text.pretrain(texts)` then failed, "'module' object is not
    # callable", after `text.save_backbone` or an `import` the docs advised.
    module = importlib.import_module(f"ktlite.{package}")
    submodules = {m.name for m in pkgutil.iter_modules(module.__path__)}
    assert not set(module._LAZY) & submodules


def test_a_lazy_function_stays_callable_after_its_module_is_imported_first():
    code = ("import ktlite.text.masked_lm\nfrom ktlite import text\n"
            "assert callable(text.pretrain) and callable(text.save_backbone)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_lazy_attributes_imports_a_name_on_first_use_only():
    namespace = {"__all__": ["sqrt"]}
    getattr_, dir_ = lazy_attributes("pkg", namespace, {"sqrt": "math"})
    assert "sqrt" not in namespace and dir_() == ["__all__", "sqrt"]
    assert getattr_("sqrt")(9.0) == 3.0
    assert namespace["sqrt"] is math.sqrt
    with pytest.raises(AttributeError, match="'pkg' has no attribute 'cos'"):
        getattr_("cos")
