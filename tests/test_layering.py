"""Which room of ktlite may import which: the rules of ARCHITECTURE.md, checked on the source.

Every module under `ktlite/` is parsed with `ast`; imports count wherever they stand
(module level, inside functions), and so do `importlib.import_module("ktlite.x")` calls and
strings that name a task module (`"ktlite.text.predictor:TextPredictor"`, how a registry
imports by name). A room is the first name under `ktlite`: `ktlite.lr.finder` is in `lr`,
`ktlite/learner.py` is `learner`. A task package is any subpackage of ktlite that is not in
`CORE_PACKAGES`, so a new task folder is covered without editing this file.
"""

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).parents[1] / "ktlite"

# Subpackages that belong to the core or sit above it; every other subpackage is a task.
CORE_PACKAGES = frozenset({"apps", "compress", "datasets", "distribute", "layers", "lr"})
ABOVE_CORE = frozenset({"apps", "compress", "cli"})
# The tasks each task builds on (ARCHITECTURE.md); a task not named here builds on none.
# What a saved predictor needs at load time; none of it may pull in the training code.
SERVING_CORE = frozenset({"predictor", "classifier", "saving", "labels"})
BUILDS_ON = {"seq2seq": {"text"}, "generation": {"seq2seq", "text"}}

# Violations in files being rewritten for issue 10 (task-free predictor and app). Each entry
# must still occur (the test fails once it is fixed, so the entry gets deleted).
# Permanent, each with its reason.
ALLOWED = {
    ("ktlite/predictor.py", "core-imports-no-task"):
        "format-1 folders (ktlite 0.1) name the task 'text', the only task then, so the "
        "loader maps that one name to its class; format 2 names the class itself",
    ("ktlite/predictor.py", "core-imports-nothing-above"):
        "Predictor.quantize and export(format='tflite') are doors to compress/, imported "
        "inside those methods only",
}


def task_packages(package_dir: Path = PACKAGE_DIR) -> frozenset:
    return frozenset(
        path.parent.name for path in package_dir.glob("*/__init__.py")
        if path.parent.name not in CORE_PACKAGES
    )


def module_of(path: Path, package_dir: Path = PACKAGE_DIR) -> tuple[str, bool]:
    """(dotted module name, whether it is a package's __init__)."""
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def room_of(module: str) -> str:
    """`ktlite.lr.finder` -> `lr`; `ktlite` itself -> `` (the lazy facade)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "ktlite" else ""


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _is_import_call(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name in ("import_module", "__import__")


def _docstring_ids(tree: ast.AST) -> set:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def imported_modules(source: str, module: str, is_package: bool, tasks: frozenset):
    """Yields `(line, module, how)` for every ktlite module the source reaches."""
    tree = ast.parse(source)
    docstrings = _docstring_ids(tree)
    calls_args = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, "import"
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, is_package)
            for alias in node.names:
                # `from ktlite import text` reaches `ktlite.text`.
                target = f"{base}.{alias.name}" if base == "ktlite" and alias.name != "*" else base
                yield node.lineno, target, "import"
        elif isinstance(node, ast.Call) and _is_import_call(node) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                calls_args.add(id(arg))
                yield node.lineno, arg.value, "import_module"
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings and id(node) not in calls_args
        ):
            name = node.value.partition(":")[0]
            if room_of(name) in tasks and name.replace(".", "").replace("_", "").isalnum():
                yield node.lineno, name, "string"


def violations(source: str, path: str, tasks: frozenset) -> list[tuple[str, str]]:
    """Returns `(message, rule)` pairs; `path` is relative to the repository root."""
    module, is_package = module_of(Path(path), Path("ktlite"))
    room = room_of(module)
    found = []
    for line, target, how in imported_modules(source, module, is_package, tasks):
        if not (target == "ktlite" or target.startswith("ktlite.")):
            continue
        to = room_of(target)
        if not to or to == room:
            continue
        rules = []
        if room == "layers" and to not in ("compat", "arguments"):
            rules.append(("layers-imports-only-compat",
                          "layers imports nothing of ktlite but compat and arguments"))
        if room == "lr" and to not in ("compat", "arguments", "_console", "saving"):
            rules.append(("lr-is-pure", "lr imports only ktlite.compat, ktlite.arguments, "
                          "ktlite._console and ktlite.saving"))
        if room in tasks and to in tasks and to not in BUILDS_ON.get(room, ()):
            rules.append(("task-imports-only-what-it-builds-on",
                          f"{room} imports only the tasks it builds on"))
        if room not in tasks and room not in ABOVE_CORE and room and to in ABOVE_CORE:
            rules.append(("core-imports-nothing-above",
                          "the core imports nothing of apps, compress or cli"))
        if to in tasks and room not in tasks:
            if room in ABOVE_CORE - {"cli"}:
                rules.append(("above-core-imports-no-task-by-name",
                              f"{room} imports no task package by name"))
            elif room != "cli":
                rules.append(("core-imports-no-task", "the core never imports a task package"))
        if room in SERVING_CORE and to == "learner":
            rules.append(("serving-core-imports-no-learner", f"{room} does not import learner"))
        for rule, text in rules:
            found.append((f"{path}:{line}: {text} [{rule}]: {how} {target}", rule))
    return found


def repository_violations() -> list[tuple[str, str, str]]:
    tasks = task_packages()
    found = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        relative = path.relative_to(PACKAGE_DIR.parent).as_posix()
        for message, rule in violations(path.read_text(), relative, tasks):
            found.append((relative, rule, message))
    return found


def test_no_room_imports_one_it_must_not():
    unexpected = [message for path, rule, message in repository_violations()
                  if (path, rule) not in ALLOWED]
    assert not unexpected, "import rules broken (see ARCHITECTURE.md):\n" + "\n".join(unexpected)


def test_text_is_recognised_as_a_task_and_the_core_is_not():
    tasks = task_packages()
    assert "text" in tasks
    assert not tasks & CORE_PACKAGES


def test_a_new_subpackage_counts_as_a_task(tmp_path):
    for name in ("lr", "tabular", "vision"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    assert task_packages(tmp_path) == {"tabular", "vision"}


TASKS = frozenset({"text", "tabular", "seq2seq", "generation"})


@pytest.mark.parametrize("path, source, rule", [
    ("ktlite/layers/new_layer.py", "from ktlite.data import make_dataset\n",
     "layers-imports-only-compat"),
    ("ktlite/layers/new_layer.py", "from .. import plots\n", "layers-imports-only-compat"),
    ("ktlite/lr/new_policy.py", "def f():\n    import ktlite.distribute\n", "lr-is-pure"),
    ("ktlite/data.py", "import importlib\nm = importlib.import_module('ktlite.tabular')\n",
     "core-imports-no-task"),
    ("ktlite/predictor.py", "REGISTRY = {'t': 'ktlite.tabular.predictor:TablePredictor'}\n",
     "core-imports-no-task"),
    ("ktlite/learner.py", "def prune():\n    from ktlite.compress.pruning import prune\n",
     "core-imports-nothing-above"),
    ("ktlite/learner.py", "from ktlite import text\n", "core-imports-no-task"),
    ("ktlite/predictor.py", "from ktlite.learner import Learner\n",
     "serving-core-imports-no-learner"),
    ("ktlite/labels.py", "def f():\n    from ktlite import learner\n",
     "serving-core-imports-no-learner"),
    ("ktlite/apps/api.py", "from ..text.explain import explain\n",
     "above-core-imports-no-task-by-name"),
    ("ktlite/compress/tflite_export.py", "from ktlite.tabular import TablePredictor\n",
     "above-core-imports-no-task-by-name"),
    ("ktlite/tabular/models.py", "from ktlite.seq2seq import models\n",
     "task-imports-only-what-it-builds-on"),
    ("ktlite/text/loaders.py", "def f():\n    from ktlite.generation import x\n",
     "task-imports-only-what-it-builds-on"),
    ("ktlite/data.py", "def f():\n    from ktlite.apps import api\n",
     "core-imports-nothing-above"),
])
def test_the_checker_flags_a_planted_violation(path, source, rule):
    found = violations(source, path, TASKS)
    assert [r for _, r in found] == [rule]
    message = found[0][0]
    assert message.startswith(f"{path}:") and f"[{rule}]" in message


@pytest.mark.parametrize("path, source", [
    ("ktlite/layers/new_layer.py", "from ktlite import compat\nfrom . import _masks\n"),
    ("ktlite/lr/new_policy.py", "from ktlite._console import say\nfrom ktlite import compat\n"
                                "from ktlite import saving\n"),
    ("ktlite/tabular/models.py", "from ktlite.layers import TransformerEncoder\n"),
    ("ktlite/seq2seq/models.py", "from ktlite.text import preprocessor\n"),
    ("ktlite/cli.py", "from ktlite import text\n"),
    ("ktlite/generation/models.py", "from ktlite.seq2seq import decoding\n"
                                    "from ktlite.text import preprocessor\n"),
    ("ktlite/apps/api.py", "from ktlite.compress import quantize\n"),
    ("ktlite/compress/pruning.py", "from ktlite.learner import Learner\n"),
    ("ktlite/predictor.py", '"""Loads e.g. `ktlite.text.predictor`."""\n'),
    ("ktlite/data.py", "import tensorflow as tf\nNAME = 'ktlite.json'\n"),
])
def test_the_checker_accepts_allowed_imports(path, source):
    assert violations(source, path, TASKS) == []
