"""The house: folders show the layers, imports point one way with no cycles, the public API cannot
shadow itself, and the CLI is a short list of nouns.

The import graph is read from the source (every `import` and `from ... import`, inside functions
too), so a cycle hidden in a function body fails here as well.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import types
from pathlib import Path

import pytest

import facespace

PACKAGE = Path(facespace.__file__).parent

# floor of each room; a module may import its own floor and the floors below, never above
FLOORS = {
    "errors": 0, "files": 0, "allocator": 0, "protocol": 0, "checkpoint": 0, "grid": 0, "version": 0,
    "data": 1, "models": 1,
    "training": 2, "index": 2, "people": 2, "photos": 2,
    "pipelines": 3,
    "reports": 4,
    "cli": 5, "web": 5,
}


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (packages by their __init__)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the facespace modules it imports (anywhere in its body)."""
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name.split(".")[0] == "facespace"}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                if base.split(".")[0] != "facespace":
                    continue
                for alias in node.names:  # `from facespace.x import y` imports module x.y when it is one
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = {t for t in targets if t != name}
    return graph


def floor(module: str) -> int | None:
    """The floor of a dotted module name (None for the package root)."""
    parts = module.split(".")
    return FLOORS[parts[1]] if len(parts) > 1 else None


def test_every_room_has_a_floor_and_a_docstring():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert rooms | modules == set(FLOORS), "a new room or top-level module needs a floor in FLOORS"
    for init in PACKAGE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init} has no docstring saying what the room is for"
        if init.parent != PACKAGE:
            assert "May import" in doc, f"{init}'s docstring does not say what the room may import"


def test_at_most_12_modules_at_the_top_level():
    modules = sorted(p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py")
    assert len(modules) <= 12, modules


def test_imports_never_point_up_a_floor():
    upward = []
    for module, targets in import_graph().items():
        for target in targets:
            if floor(target) is None:
                upward.append(f"{module} imports the package root (import from its module instead)")
            elif floor(module) is not None and floor(target) > floor(module):
                upward.append(f"{module} (floor {floor(module)}) imports {target} (floor {floor(target)})")
    assert not upward, "\n".join(sorted(upward))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def all_submodules() -> list[types.ModuleType]:
    return [importlib.import_module(info.name)  # __main__ runs the command line when imported
            for info in pkgutil.walk_packages(facespace.__path__, prefix="facespace.") if not info.name.endswith("__main__")]


def test_exported_names_are_what_they_say_after_every_submodule_is_imported():
    all_submodules()  # importing a submodule named like a verb would rebind the package attribute
    assert len(facespace.__all__) <= 22, facespace.__all__
    for name in facespace.__all__:
        value = getattr(facespace, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        assert not isinstance(value, types.ModuleType), f"facespace.{name} is a module, not the verb"
        assert inspect.isfunction(value) or inspect.isclass(value), f"facespace.{name} is {value!r}"
        assert value.__name__ == name, f"facespace.{name} is {value.__module__}.{value.__name__}"
        assert value.__module__.startswith("facespace."), value.__module__


def test_no_room_exports_a_name_that_its_submodules_shadow():
    for module in all_submodules():
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            assert not isinstance(value, types.ModuleType), f"{module.__name__}.{name} became a module"


def test_a_moved_name_still_answers_with_a_warning():
    with pytest.warns(DeprecationWarning, match="facespace.pipelines.generation.vary"):
        vary = facespace.vary
    from facespace.pipelines.generation import vary as real

    assert vary is real
    with pytest.raises(AttributeError, match="no attribute 'no_such_verb'"):
        facespace.no_such_verb  # noqa: B018


def test_the_cli_is_a_short_list_of_nouns():
    import typer.main

    from facespace.cli import build_app

    group = typer.main.get_command(build_app())
    visible = [name for name, cmd in group.commands.items() if not cmd.hidden]
    assert len(visible) <= 15, visible


def test_the_readme_layout_names_every_room_and_module():
    readme = (PACKAGE.parent / "README.md").read_text()
    layout = readme[readme.index("### Layout"):readme.index("### The model contract")]
    for path in PACKAGE.rglob("*.py"):
        if path.name == "__init__.py" or path.parent.name in ("cli", "web"):
            continue
        room = path.parent.name + "/" if path.parent != PACKAGE else ""
        assert path.stem in layout, f"README's layout does not name {room}{path.name}"
    for room in (p for p in PACKAGE.rglob("*") if p.is_dir() and (p / "__init__.py").exists()):
        assert f"{room.name}/" in layout, f"README's layout does not name the room {room.name}/"
