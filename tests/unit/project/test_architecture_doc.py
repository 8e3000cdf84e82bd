"""docs/architecture.md names every module of api/, worker/ and shared/ (a new one without a row fails here)."""

import re

from tests.stack import ROOT


def modules() -> list[str]:
    found = sorted(
        str(path.relative_to(ROOT))
        for package in ("api", "worker", "shared")
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py"
    )
    assert found, "no modules found"
    return found


def test_every_module_has_a_row() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    missing = [module for module in modules() if f"`{module}`" not in doc]
    assert not missing, f"docs/architecture.md lacks rows for {missing}"


def test_every_row_names_a_module_that_exists() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"`((?:api|worker|shared)/[\w/]+\.py)`", doc))
    assert len(named) >= len(modules()), "the module names were not found in the document"
    stale = sorted(name for name in named if not (ROOT / name).exists())
    assert not stale, f"docs/architecture.md names modules that do not exist: {stale}"
