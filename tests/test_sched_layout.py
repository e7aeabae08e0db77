"""The package layout: no import cycle inside multimodal_sched, one dataset registry, one strategy registry."""
import ast
import pathlib

import pytest

import multimodal_sched
from multimodal_sched.data import DATASETS, KINDS
from multimodal_sched.methods import STRATEGIES

ROOT = pathlib.Path(multimodal_sched.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path, name: str) -> set:
    """multimodal_sched modules imported anywhere in the file (a lazy import inside a function counts too)."""
    pkg = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            mod = (base + ("." + node.module if node.module else "")) if node.level else (node.module or "")
            if mod.startswith("multimodal_sched"):
                out.add(mod)
                out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("multimodal_sched"))
    return out


def _graph() -> dict:
    mods = {_module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: {i for i in _imports(p, m) if i in mods and i != m} for m, p in mods.items()}


def _find_cycle(graph: dict):
    state = {}

    def visit(m, stack):
        state[m] = 1
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                c = visit(n, stack + [n])
                if c:
                    return c
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            c = visit(m, [m])
            if c:
                return c
    return None


def test_no_import_cycle_between_modules():
    g = _graph()
    # a package's __init__ importing its own submodules is not a cycle between modules
    g = {m: {n for n in deps if not (n.startswith(m + ".") and ROOT.joinpath(*m.split(".")[1:], "__init__.py").exists())}
         for m, deps in g.items()}
    assert _find_cycle(g) is None, f"import cycle: {' -> '.join(_find_cycle(g))}"


def test_cycle_finder_finds_a_planted_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_one_dataset_registry_with_the_three_kinds():
    kinds = {n: s.kind for n, s in DATASETS.items()}
    assert kinds == {"cg-digits": "builtin", "synthetic": "builtin", "npz": "file", "cremad": "disk",
                     "ave": "disk", "ucf101": "disk", "cgmnist": "disk"}
    assert set(kinds.values()) == set(KINDS)
    assert not (ROOT / "datasets").exists()


def test_the_three_simple_strategies_are_registered_one_module_each():
    for name in ("concat", "uniform", "aux"):
        assert STRATEGIES[name].name == name
        assert STRATEGIES[name].__module__ == f"multimodal_sched.methods.{name}"
    assert STRATEGIES["aux"].defaults == {"weight": 0.6}
    with pytest.raises(ValueError, match="weight"):
        STRATEGIES["aux"](weight=-1)


def test_without_torch_the_command_names_the_extra_in_one_line():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "from multimodal_sched.cli import main\n"
            "rc = main(['run', '--dataset', 'cg-digits'])\n"
            "import multimodal_sched as ms\n"
            "assert ms.RunConfig().method == 'pid'   # config and controller work without torch\n"
            "try:\n    ms.run\nexcept ImportError as e:\n    print(e)\n"
            "sys.exit(rc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "torch" in lines[0] and "pip install 'fastpid[sched]'" in lines[0]
    assert "fastpid[sched]" in out.stdout and "torch" in out.stdout
