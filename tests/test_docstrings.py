"""Docstring conventions of the public API (Google style: Args, Returns, Raises and a short
`Example:`), so a new public name that lacks them fails CI.

The rule, over every name in the `__all__` of `ktlite` and of each of its non-underscore
submodules: a function or class needs an `Example` section (a class may have it in its
`__init__`'s docstring instead), and a function with parameters needs `Args:`. A public
method defined on such a class needs an `Example` section, and `Args:` when it takes
parameters besides `self` / `cls`; a method that overrides a base-class method (a Keras
hook such as `on_epoch_end`, `get_config`, `call`) is documented by its base and exempt.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import types
from collections.abc import Iterable

import ktlite


def public_modules() -> list[types.ModuleType]:
    """`ktlite` and its submodules whose names do not start with an underscore."""
    names = ["ktlite"] + [
        f"ktlite.{info.name}"
        for info in pkgutil.iter_modules(ktlite.__path__)
        if not info.name.startswith("_")
    ]
    return [importlib.import_module(name) for name in names]


def _has_example(doc: str) -> bool:
    """Whether `doc` has an `Example:` (or `Examples:`) section header on a line of its own."""
    return re.search(r"^\s*Examples?:\s*$", doc, re.MULTILINE) is not None


def _overrides(cls: type, name: str) -> bool:
    """Whether a base class of `cls` (other than `object`) defines `name`."""
    return any(name in vars(base) for base in cls.__mro__[1:] if base is not object)


def _takes_arguments(function: types.FunctionType) -> bool:
    """Whether `function` has a parameter besides `self` / `cls`."""
    return any(p not in ("self", "cls") for p in inspect.signature(function).parameters)


def _method_gaps(cls: type) -> Iterable[tuple[str, list[str]]]:
    """`(method name, missing sections)` for the public methods `cls` itself adds."""
    for name, value in vars(cls).items():
        if name.startswith("_") or _overrides(cls, name):
            continue
        function = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        if not inspect.isfunction(function):
            continue  # properties and class attributes
        doc = inspect.getdoc(function) or ""
        missing = []
        if _takes_arguments(function) and "Args:" not in doc:
            missing.append("Args")
        if not _has_example(doc):
            missing.append("Example")
        if missing:
            yield name, missing


def missing_sections(modules: Iterable[types.ModuleType]) -> dict[str, list[str]]:
    """Public objects of `modules` whose docstrings lack a required section.

    Args:
        modules: modules whose `__all__` names are checked; an object listed by several
            is checked once, under the first module's name.

    Returns:
        `{"module.name" or "module.Class.method": ["Args", "Example"]}` for every offender.
    """
    seen: set[int] = set()
    gaps: dict[str, list[str]] = {}
    for module in modules:
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name, None)
            if id(obj) in seen or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            seen.add(id(obj))
            where = f"{module.__name__}.{name}"
            doc = inspect.getdoc(obj) or ""
            missing = []
            if inspect.isclass(obj):
                doc += "\n" + (inspect.getdoc(obj.__init__) or "")
            if not _has_example(doc):
                missing.append("Example")
            if inspect.isfunction(obj) and inspect.signature(obj).parameters and (
                "Args:" not in doc
            ):
                missing.append("Args")
            if missing:
                gaps[where] = missing
            if inspect.isclass(obj):
                for method, method_missing in _method_gaps(obj):
                    gaps[f"{where}.{method}"] = method_missing
    return gaps


def test_every_public_function_class_and_method_has_args_and_an_example():
    modules = public_modules()
    assert {"ktlite", "ktlite.learner", "ktlite.text", "ktlite.apps"} <= {
        module.__name__ for module in modules
    }
    gaps = missing_sections(modules)
    assert not gaps, (
        "Public docstrings lack sections (the convention: Google style with Args, Returns, "
        "Raises and a short `Example:` of `>>>` lines):\n"
        + "\n".join(f"  {where}: {', '.join(missing)}" for where, missing in gaps.items())
    )


def _documented(x: int) -> int:
    """Doubles.

    Args:
        x: a number.

    Example:
        >>> _documented(2)
    """
    return 2 * x


def _no_args_section(x: int) -> int:
    """Doubles, with an example but no argument section.

    Example:
        >>> _no_args_section(2)
    """
    return 2 * x


def _no_sections(x: int) -> int:
    """Doubles, undocumented."""
    return 2 * x


def _no_parameters() -> int:
    """Takes nothing, so it needs no argument section.

    Example:
        >>> _no_parameters()
    """
    return 1


class _Base:
    def hook(self, logs: dict) -> None:
        """The base documents the hook."""


class _Widget(_Base):
    def __init__(self, size: int) -> None:
        """Builds it.

        Args:
            size: how big.

        Example:
            >>> _Widget(3)
        """
        self.size = size

    def hook(self, logs: dict) -> None:  # an override: exempt
        pass

    def grow(self, by: int) -> None:
        """Grows, with no sections."""

    @classmethod
    def make(cls) -> _Widget:
        """Makes one, with no example."""
        return cls(1)

    @property
    def area(self) -> int:  # a property: not a method
        return self.size**2

    def _private(self, x: int) -> None:
        pass


class _Undocumented:
    """A class without an example anywhere."""


def _example_in_prose(x: int) -> int:
    """Doubles: for Example, 2 gives 4, but no section says so.

    Args:
        x: a number.
    """
    return 2 * x


def test_checker_reports_each_missing_section_of_a_planted_module_and_nothing_else():
    planted = types.ModuleType("planted")
    members = {
        "documented": _documented, "no_args_section": _no_args_section,
        "no_sections": _no_sections, "no_parameters": _no_parameters, "Widget": _Widget,
        "Undocumented": _Undocumented, "example_in_prose": _example_in_prose,
        "VERSION": "1.0",
    }
    vars(planted).update(members, __all__=[*members, "not_defined"])
    again = types.ModuleType("again")
    vars(again).update(no_sections=_no_sections, __all__=["no_sections"])

    assert missing_sections([planted, again]) == {
        "planted.no_args_section": ["Args"],
        "planted.no_sections": ["Example", "Args"],
        "planted.Widget.grow": ["Args", "Example"],
        "planted.Widget.make": ["Example"],
        "planted.Undocumented": ["Example"],
        "planted.example_in_prose": ["Example"],
    }
