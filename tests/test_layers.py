"""The package's layers, read from its imports with ``ast``: what may import what.

A module may import modules of its own layer or of a lower one, never a higher one; no two
modules import each other, directly or round a longer circle, also not through an import inside
a function; no ``_name`` is imported from another module, and a private module (``_x.py``) is
imported only from inside its own package. The order below is the one README's Development
section lists, lowest first.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

LAYERS: list[tuple[str, ...]] = [
    ("segsweep", "segsweep.errors"),  # the version, and the one error tree
    ("segsweep.config",),  # settings as data, the search space
    # the Keras backend and the device; the import hooks; the deterministic kernels
    ("segsweep.backend", "segsweep.imports", "segsweep.reproducible"),
    ("segsweep.data",),  # files -> checked, prepared arrays; splits; input pipelines
    ("segsweep.doctor",),  # the data and settings examined before anything trains
    ("segsweep.model",),  # UNet++ and its losses
    ("segsweep.plan",),  # the data's fingerprint -> settings with their reasons
    ("segsweep.evaluation",),  # metrics, set-level scores, diagnoses, overlays
    ("segsweep.store",),  # the Optuna storage, MLflow tracking, crash recovery
    ("segsweep.trial",),  # one trial inside a worker: fit, callbacks, objective, fold trial
    ("segsweep.study",),  # many trials: workers, coordinator, run, rerun
    ("segsweep.finalize",),  # cross-validation, the champion, the test score
    ("segsweep.results",),  # explain, report, predict
    ("segsweep.cli", "segsweep.__main__"),  # the command line
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted((SRC / "segsweep").rglob("*.py"))}


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and len(prefix) > best_len and (prefix != "segsweep" or module == prefix):
                best, best_len = rank, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def package_of(module: str) -> str:
    is_package = MODULES[module].name == "__init__.py"
    return module if is_package else module.rpartition(".")[0]


def imports(module: str, source: str | None = None) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every segsweep import, at any depth."""
    tree = ast.parse(MODULES[module].read_text() if source is None else source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, "", node.lineno) for a in node.names if a.name in MODULES]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                pkg = package_of(module).split(".")
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            if base not in MODULES:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = sub in MODULES
                name = "" if is_module else alias.name
                found.append((sub if is_module else base, name, node.lineno))
    return found


EDGES = {m: imports(m) for m in MODULES}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_a_higher_layer() -> None:
    wrong = [
        f"{m}:{line} imports {target} ({LAYERS[layer_of(target)][0]} is above "
        f"{LAYERS[layer_of(m)][0]})"
        for m, edges in EDGES.items()
        for target, _, line in edges
        if layer_of(target) > layer_of(m)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_private_name_crosses_a_module() -> None:
    wrong = [
        f"{m}:{line} imports {name} from {target}"
        for m, edges in EDGES.items()
        for target, name, line in edges
        if name.startswith("_") and not name.startswith("__") and target != m
    ]
    assert not wrong, "\n".join(wrong)


def test_a_private_module_is_imported_only_inside_its_package() -> None:
    def private_owner(target: str) -> str | None:
        parts = target.split(".")
        for i, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                return ".".join(parts[:i])
        return None

    wrong = []
    for m, edges in EDGES.items():
        for target, _, line in edges:
            owner = private_owner(target)
            if owner and not (m == owner or m.startswith(owner + ".")):
                wrong.append(f"{m}:{line} imports the private module {target}")
    assert not wrong, "\n".join(wrong)


def circles() -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan's algorithm)."""
    graph = {m: sorted({t for t, _, _ in edges if t != m}) for m, edges in EDGES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles() -> None:
    assert not circles(), "modules that import each other: " + "; ".join(
        " <-> ".join(group) for group in circles()
    )


@pytest.mark.parametrize(
    "source, expected",
    [
        (
            "from segsweep.trial.objective import _finish\n",
            [("segsweep.trial.objective", "_finish")],
        ),
        (
            "def f():\n    from segsweep.results import predict\n",
            [("segsweep.results.predict", "")],
        ),
        ("from .sets import bootstrap_ci\n", [("segsweep.evaluation.sets", "bootstrap_ci")]),
    ],
)
def test_the_reader_sees_every_kind_of_import(source: str, expected: list) -> None:
    """The check itself: a function-level, a private and a relative import are all seen."""
    found = [(target, name) for target, name, _ in imports("segsweep.evaluation.metrics", source)]
    assert found == expected
