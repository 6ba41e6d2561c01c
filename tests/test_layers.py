"""The package's modules depend one way: public API -> launch layer ->
backend -> constants (and C). Checked two ways:

* every submodule imported first, each in its own fresh interpreter, with
  the package's ``__init__`` not run before it (``__init__`` imports
  ``_backend`` first and so hides a cycle that any other entry point --
  a test, a tool, a future ``__init__`` -- would hit);
* the imports written in the sources (module level and lazy ones alike)
  point down or sideways within a layer, never up, and form no cycle.
"""
import ast
import os
import re
import subprocess
import sys

import pytest

import fastspawn

PKG_DIR = os.path.dirname(os.path.abspath(fastspawn.__file__))

# Lowest first. A module may import modules of its own layer or below.
LAYERS = [
    ("constants", {"_constants", "_request", "_contract"}),
    ("backend", {"_compat", "_forkexec", "_comm_py", "_spawn_py", "_spawn_c",
                 "_backend"}),
    ("launch", {"_encode", "_execpath", "_launch", "_procwait",
                "_completed", "_rebind"}),
    ("api", {"_popen", "_fastrun", "_pipeline", "_runmany", "_osfuncs",
             "_subprocess_api", "_install", "_aiowatch", "daemon",
             "__init__", "__main__", "_bench"}),
]
LAYER_OF = {m: i for i, (_, mods) in enumerate(LAYERS) for m in mods}


def _sources():
    """{module name: source text} of the package as installed: .py files,
    and the Cython source where it is there (the source tree)."""
    found = {}
    for fn in os.listdir(PKG_DIR):
        name, ext = os.path.splitext(fn)
        if ext == ".py" or ext == ".pyx":
            with open(os.path.join(PKG_DIR, fn), encoding="utf-8") as f:
                found[name] = (ext, f.read())
    return found


def _modules():
    names = {n for n in _sources()}
    try:
        from fastspawn import _spawn_c  # noqa: F401
        names.add("_spawn_c")
    except ImportError:
        pass
    return sorted(names)


_PYX_IMPORT = re.compile(r"^\s*from \.(\w*) c?import (\w+)", re.M)


def _imports(ext, source):
    """The package modules ``source`` imports (anywhere in it)."""
    deps = set()
    if ext == ".pyx":
        for mod, name in _PYX_IMPORT.findall(source):
            deps.add(mod or name)
        # cimports of the .pxd declarations are the C side, not modules.
        return {d for d in deps if not d.startswith("_fs_")}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names)
            elif node.level == 0 and node.module:
                parts = node.module.split(".")
                if parts[0] == "fastspawn":
                    if len(parts) > 1:
                        deps.add(parts[1])
                    else:
                        deps.update(a.name for a in node.names
                                    if a.name in LAYER_OF)
                        deps.add("__init__")
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "fastspawn":
                    deps.add(parts[1] if len(parts) > 1 else "__init__")
    return deps


def test_every_module_has_a_layer():
    assert set(_modules()) <= set(LAYER_OF), (
        "a new module: put it in LAYERS")


def test_imports_point_down_and_form_no_cycle():
    graph = {name: _imports(ext, src) for name, (ext, src)
             in _sources().items()}
    upward = []
    for mod, deps in graph.items():
        for dep in deps:
            if dep == mod:
                continue
            if LAYER_OF[dep] > LAYER_OF[mod]:
                upward.append("%s (%s) imports %s (%s)" % (
                    mod, LAYERS[LAYER_OF[mod]][0], dep,
                    LAYERS[LAYER_OF[dep]][0]))
    assert not upward, upward
    # No cycle, within a layer either (depth-first search).
    state = {}

    def visit(mod, path):
        if state.get(mod) == "done":
            return
        if state.get(mod) == "open":
            cycle = path[path.index(mod):] + [mod]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        state[mod] = "open"
        for dep in sorted(graph.get(mod, ())):
            if dep != mod:
                visit(dep, path + [mod])
        state[mod] = "done"

    for mod in sorted(graph):
        visit(mod, [])


# The package object without running its __init__, then the submodule:
# the submodule is the first thing of fastspawn that is imported.
FIRST = r"""
import importlib, importlib.util, sys, types
sys.path[:0] = %(path)r
spec = importlib.util.find_spec("fastspawn")
pkg = types.ModuleType("fastspawn")
pkg.__path__ = list(spec.submodule_search_locations)
pkg.__file__ = spec.origin
pkg.__spec__ = spec
sys.modules["fastspawn"] = pkg
importlib.import_module("fastspawn." + %(name)r)
print("imported")
"""


@pytest.mark.parametrize("name", _modules())
def test_each_module_imports_first_in_a_fresh_interpreter(name, backend):
    env = dict(os.environ)
    if backend.__name__.endswith("_spawn_py"):
        env["FASTSPAWN_NO_EXTENSIONS"] = "1"    # the pure backend's imports
    if name == "__init__":
        code = "import sys; sys.path[:0] = %r\nimport fastspawn\n" \
               "print('imported')" % ([p for p in sys.path if p],)
    else:
        code = FIRST % {"path": [p for p in sys.path if p], "name": name}
    r = subprocess.run([sys.executable, "-I", "-c", code], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "imported", r.stderr
