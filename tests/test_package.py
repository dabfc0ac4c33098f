"""Tests for the `ktlite` package itself: lazy names and submodules found on disk."""

import pkgutil
import subprocess
import sys

import pytest

import ktlite


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
