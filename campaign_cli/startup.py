"""Start-up: standard modules that SQLAlchemy imports but a command seldom uses are loaded on first use.

SQLAlchemy imports `asyncio` (for its async engines) and `importlib.metadata` (for entry-point
plugins) when it is imported, and its SQLite dialect imports `asyncio` again for the aiosqlite
driver; with them come `ssl`, `socket`, `email` and `zipfile`: about a sixth of what a quick
read such as `campaign segment list` spends starting, for modules no command on SQLite
uses. While a module of SQLAlchemy is imported, each of them is a `Deferred` stand-in;
SQLAlchemy keeps its references to the stand-ins, and the first attribute read on one imports
the real module. The stand-ins leave `sys.modules` as soon as that import is done, so any other
`import asyncio` is the ordinary one; only the `metadata` attribute of `importlib` stays a
stand-in until someone imports `importlib.metadata` (SQLAlchemy reads it there at run time).
A submodule of a deferred package imported while a stand-in is in place would be loaded twice:
tests/test_startup.py checks that none is.

`lazy_module` is the other half: a command module holds its service modules as lazy modules, so
a command that answers without SQLAlchemy (`store/lookup.py`) never runs them.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from typing import Any

DEFERRED = ("asyncio", "importlib.metadata")

_loading = threading.RLock()


class Deferred(types.ModuleType):
    """A module not imported yet: the first read of an attribute it lacks imports the real one,
    and the stand-in takes on its attributes."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.load(), attr)

    def load(self) -> types.ModuleType:
        """The real module, imported now if it was not yet."""
        with _loading:
            if sys.modules.get(self.__name__) is self:
                del sys.modules[self.__name__]
            real = importlib.import_module(self.__name__)
            self.__dict__.update(real.__dict__)
        return real


def lazy_module(name: str) -> types.ModuleType:
    """The module `name`, run only when one of its attributes is first read (the standard library's
    LazyLoader): a command module names the service modules its commands call without importing
    SQLAlchemy with them, for the commands that answer without it."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None, name
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return module


def defer_unused_stdlib() -> None:
    """Have SQLAlchemy's modules imported with stand-ins for the modules of DEFERRED."""
    if not any(isinstance(finder, _SqlalchemyFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SqlalchemyFinder())


# The finder and the loader are plain classes: importlib.abc would import importlib.resources,
# tempfile and shutil, a fifth of what the stand-ins save.
class _SqlalchemyFinder:
    """Finds SQLAlchemy's modules with a loader that runs them among the stand-ins (a meta path finder)."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != "sqlalchemy" and not name.startswith("sqlalchemy."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _AmongStandIns(spec.loader)
        return spec


class _AmongStandIns:
    """Runs a module with stand-ins for the modules of DEFERRED that are not imported yet."""

    def __init__(self, loader: Any):
        self.loader = loader

    def __getattr__(self, attr: str) -> Any:  # get_code, get_data, is_package, …: the real loader's
        return getattr(self.loader, attr)

    def create_module(self, spec: Any) -> Any:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        stand_ins = [_stand_in(name) for name in DEFERRED if name not in sys.modules]
        try:
            self.loader.exec_module(module)
        finally:
            for stand_in in stand_ins:
                if sys.modules.get(stand_in.__name__) is stand_in:
                    del sys.modules[stand_in.__name__]


def _stand_in(name: str) -> Deferred:
    module = Deferred(name)
    if name == "asyncio":
        # Read when SQLAlchemy is imported, called only by its async engines.
        module.iscoroutine = lambda obj: module.load().iscoroutine(obj)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        # `importlib.metadata.version(…)` reads the attribute: it stays, and imports the module when used.
        setattr(sys.modules[parent], child, module)
    return module
