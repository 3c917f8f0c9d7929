"""Every extra the README or a script tells a user to install exists in the installed package.

pip installs ``.[name]`` for an undeclared ``name`` with only a warning, so a missing extra shows
up as an absent tool later (optuna-dashboard, once the ``dashboard`` extra was lost in a merge).
"""

from __future__ import annotations

import re
from importlib.metadata import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `.[dashboard]`, `.[test,jax]`, `segsweep[jax]`: an install target and its extras
EXTRAS = re.compile(r"(?:\.|segsweep)\[([a-z0-9_,\- ]+)\]")


def named_extras() -> dict[str, set[str]]:
    """Each extra named in README.md and scripts/*.sh, with the files that name it."""
    named: dict[str, set[str]] = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "scripts").glob("*.sh"))]:
        for match in EXTRAS.finditer(path.read_text()):
            for extra in match.group(1).split(","):
                named.setdefault(extra.strip(), set()).add(path.name)
    return named


def test_every_extra_the_readme_names_is_declared_and_installs_something() -> None:
    meta = metadata("segsweep")
    declared = set(meta.get_all("Provides-Extra") or [])
    named = named_extras()
    assert {"dashboard", "jax", "test"} <= set(named)  # the pattern still finds them
    missing = {extra: sorted(files) for extra, files in named.items() if extra not in declared}
    assert not missing, (
        f"named but not declared by the installed segsweep (declares {sorted(declared)}; "
        f"after editing pyproject.toml reinstall with pip install -e .): {missing}"
    )
    requires = meta.get_all("Requires-Dist") or []
    empty = [e for e in named if not any(f'extra == "{e}"' in r for r in requires)]
    assert not empty, f"extras that install nothing: {empty}"
