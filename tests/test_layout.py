"""The project's modules never hide an installed package or the standard library, whatever the import
path: Prefect puts a deployment entrypoint's folder first on ``sys.path`` (a ``flows/dbt.py`` once hid
dbt from every deployed run)."""

from __future__ import annotations

import importlib.metadata
import pkgutil
import subprocess
import sys
from pathlib import Path

from loaders.common.warehouse import ROOT

PACKAGES = ("flows", "loaders", "demo", "testing")  # the product, then the harness


def _installed_names() -> set[str]:
    names = set(sys.stdlib_module_names) | set(importlib.metadata.packages_distributions())
    site = [path for path in sys.path if path.endswith("site-packages")]
    names |= {module.name for module in pkgutil.iter_modules(site)}
    return names - set(PACKAGES)


def test_no_project_module_shares_a_name_with_an_installed_one() -> None:
    installed = _installed_names()
    assert {"dbt", "prefect", "dlt", "json"} <= installed  # the check sees what is installed
    clashes = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = path.parent.name if path.name == "__init__.py" else path.stem
            if name in installed:
                clashes.append(str(path.relative_to(ROOT)))
    assert clashes == []


def test_the_deployed_entrypoint_imports_with_its_folder_first_on_the_path() -> None:
    """What Prefect's process worker does with ``flows/main.py:main_flow``."""
    import subprocess

    code = (
        "import sys; sys.path.insert(0, 'flows');"
        "from prefect.flows import load_flow_from_entrypoint;"
        "flow = load_flow_from_entrypoint('flows/main.py:main_flow');"
        "import dbt.cli.main; print(flow.name)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-1] == "elt-main"


def test_the_import_contracts_hold() -> None:
    """pyproject.toml's import-linter contracts: the product never imports the harness (but for `elt
    demo` at its edge), loaders never import flows, no two modules of a package import each other."""
    import subprocess

    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports")], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert result.stdout.count("KEPT") == 3


def test_the_registry_names_each_source_s_own_dataset_without_importing_it() -> None:
    """The registry writes the datasets down (importing each source's settings imported the source, 0.3 s
    of every command): they must be the sources' own, and naming the syncs must import no source."""
    import importlib

    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, loaders.registry; print([m for m in sys.modules if m.count('.') == 1])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    from loaders.registry import SYNCS

    for sync in SYNCS.values():
        package = sync.builder.split(":")[0]
        assert sync.dataset == importlib.import_module(f"{package}.settings").DATASET, sync.name
        assert f"'{package}'" not in found.stdout, f"loaders.registry imports {package}"
