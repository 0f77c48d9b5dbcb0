"""Plugin loading over the ``snnkit`` entry-point group. ``SNNKIT_LOAD_PLUGINS`` chooses what loads: unset, every
installed plugin; a comma-separated list, only those (entry-point or distribution names); empty, none. A plugin
that fails to import, or whose hook raises, is recorded as broken with its error and the rest keep working."""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import signal
import sys
import threading
import time
import traceback
from importlib.metadata import entry_points

import pluggy
from attrs import define, field

from snnkit_core.contract import hookspecs, implementations
from snnkit_core.contract.errors import RegistrationError, SnnkitError
from snnkit_core.contract.registry import Registry

ENV_VAR = "SNNKIT_LOAD_PLUGINS"

_HOOK_KIND = {"register_neurons": "neuron", "register_connectivity": "connectivity", "register_rules": "rule",
              "register_datasets": "dataset"}

#: snnkit's own plugins: on a name clash with a third-party plugin, theirs keep the name and the other is broken
FIRST_PARTY = frozenset({"snnkit-neurons", "snnkit-connectivity", "snnkit-rules", "snnkit-datasets"})
_CLASH = "registration refused: "  # how a plugin's error starts when a registration of it was refused


@define
class PluginInfo:
    """One loaded (or broken) plugin: entry-point name, version, distribution, error, entry-module import seconds."""

    name: str
    version: str | None = None
    distribution: str | None = None
    error: str | None = None
    load_s: float | None = None


@define
class _State:
    registry: Registry = field(factory=Registry)
    plugins: dict[str, PluginInfo] = field(factory=dict)
    loaded: bool = False
    collected: bool = False  # the register_* hooks have run (they import the components, and torch)


def _new_pm() -> pluggy.PluginManager:
    (pm := pluggy.PluginManager("snnkit")).add_hookspecs(hookspecs)
    return pm


_state, pm = _State(), _new_pm()


def short_error(exc: BaseException) -> str:
    """``Type: message (at file:line)`` of an exception a plugin raised."""
    last = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != __file__][-1:]  # the plugin's line
    return f"{type(exc).__name__}: {exc}" + (f" (at {last[0].filename}:{last[0].lineno})" if last else "")


def _validation_error(exc: Exception, name: str) -> str:
    """Why pluggy refused plugin ``name``: a hook snnkit does not have (a misspelt name, with the close match) or a
    malformed hook signature."""
    unknown = re.match(r"unknown hook '(\w+)'", str(exc))
    if unknown is None:
        return f"{type(exc).__name__}: {exc}. This is an issue with plugin {name!r}, not snnkit."
    specs = sorted(n for n, f in vars(hookspecs).items() if hasattr(f, "snnkit_spec"))
    close = difflib.get_close_matches(unknown.group(1), specs, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"it implements {unknown.group(1)!r}, which is not a snnkit hook{hint}; snnkit's hooks are "
            f"{', '.join(specs)}. This is an issue with plugin {name!r}, not snnkit.")


@contextlib.contextmanager
def guard():
    """While a plugin's code runs, ``os._exit`` raises SystemExit (caught: the plugin is named) and the SIGINT handler
    marks the user's Ctrl-C (yielded), telling it apart from a KeyboardInterrupt the plugin raises itself."""
    pressed, saved = [], (os._exit, signal.getsignal(signal.SIGINT))

    def ctrl_c(*_):
        pressed.append(True)
        raise KeyboardInterrupt

    os._exit = lambda code=0: sys.exit(f"it called os._exit({code})")
    main = threading.current_thread() is threading.main_thread() and saved[1] is not None
    with contextlib.ExitStack() as stack:
        stack.callback(setattr, os, "_exit", saved[0])
        if main:
            signal.signal(signal.SIGINT, ctrl_c)
            stack.callback(signal.signal, signal.SIGINT, saved[1])
        yield pressed


def _import(ep, info: PluginInfo):
    """``ep.load()`` with ``sys.argv`` reduced to the program name (a plugin that parses the command line at import
    must not eat snnkit's options) and its prints captured (they would corrupt ``--json``); None if it failed."""
    captured, argv, start = io.StringIO(), sys.argv, time.perf_counter()
    sys.argv = argv[:1]
    try:
        with guard() as pressed, contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            return ep.load()
    except BaseException as exc:  # a broken plugin must not take snnkit down, whatever it raises
        if isinstance(exc, KeyboardInterrupt) and pressed:
            raise  # the user's own Ctrl-C
        printed = captured.getvalue().strip()
        info.error = short_error(exc) + (f"; it printed: {printed}" if printed else "")
        return None
    finally:
        sys.argv, info.load_s = argv, time.perf_counter() - start


def load_plugins() -> list[PluginInfo]:
    """Import every selected plugin of the ``snnkit`` entry-point group once; returns them (not collected). Whatever
    one does at import (raise or exit; parse ``sys.argv``; print), or a bad hook, marks it broken; the others load."""
    if _state.loaded:
        return list(_state.plugins.values())
    _state.loaded = True
    selected = os.environ.get(ENV_VAR)
    allowed = None if selected is None else {s.strip() for s in selected.split(",") if s.strip()}
    for ep in entry_points(group="snnkit"):
        dist = ep.dist.name if ep.dist is not None else None
        if allowed is not None and ep.name not in allowed and dist not in allowed:
            continue
        info = _state.plugins[ep.name] = PluginInfo(ep.name, ep.dist.version if ep.dist is not None else None, dist)
        module = _import(ep, info)
        if module is None or pm.is_registered(module) or pm.get_plugin(ep.name) is not None:
            continue
        try:  # pluggy validates the signatures; check_pending finds a misspelt hook (of this plugin: the others passed)
            pm.register(module, name=ep.name)
            pm.check_pending()
        except Exception as exc:  # noqa: BLE001 - one plugin's mistake must not stop every command
            info.error = _validation_error(exc, ep.name)
            if pm.get_plugin(ep.name) is not None:
                pm.unregister(name=ep.name)
    return list(_state.plugins.values())


def register_plugin(obj, name: str, version: str | None = None) -> None:
    """Register an in-process plugin (tests, notebooks) and add its components to the registry."""
    get_registry()
    pm.register(obj, name=name)
    pm.check_pending()
    _state.plugins[name] = PluginInfo(name, version)
    _collect(only=name)


def unregister_plugin(name: str) -> None:
    """Remove an in-process plugin and its components."""
    if (plugin := pm.get_plugin(name)) is not None:
        pm.unregister(plugin)
    _state.registry.unregister_plugin(name)
    _state.plugins.pop(name, None)


def hook_impls(hook_name: str) -> list[tuple[object, PluginInfo]]:
    """``(hookimpl, plugin info)`` of one hook, first-party plugins first, then by name (a stable clash order)."""

    def precedence(impl) -> tuple[bool, str]:
        dist = (_state.plugins.get(impl.plugin_name) or PluginInfo("")).distribution or ""
        return (re.sub(r"[-_.]+", "-", dist).lower() not in FIRST_PARTY, impl.plugin_name)  # PEP 503 names

    impls = sorted(getattr(pm.hook, hook_name).get_hookimpls(), key=precedence)
    return [(i, _state.plugins.setdefault(i.plugin_name, PluginInfo(i.plugin_name))) for i in impls]


def _collect(only: str | None = None) -> None:
    """Call each plugin's register_* hooks separately so the registry knows who registered what."""
    for hook_name, kind in _HOOK_KIND.items():
        for impl, info in hook_impls(hook_name):
            if only is not None and impl.plugin_name != only:
                continue
            if not info.error:
                _collect_one(impl, kind, hook_name, info, only)
            elif info.error.startswith(_CLASH):  # learn what else it would have provided, registering nothing
                with contextlib.suppress(Exception, SystemExit):
                    impl.function(register=lambda cls, _k=kind, _p=impl.plugin_name, _e=info.error: (
                        _state.registry.mark_unavailable(_k, getattr(cls, "name", None), _p, _e)))
    implementations.collect(pm, only, {n for n, i in _state.plugins.items() if i.error})


def _collect_one(impl, kind: str, hook_name: str, info: PluginInfo, only: str | None) -> None:
    """Run one plugin's register hook; if it raises, the plugin is broken and none of its components stay."""
    attempted: list[tuple[str, object]] = []

    def register(cls):
        attempted.append((kind, cls))
        _state.registry.register(kind, cls, impl.plugin_name)

    try:
        with guard() as pressed:
            impl.function(register=register)
    except BaseException as exc:
        if only is not None and isinstance(exc, SnnkitError) or isinstance(exc, KeyboardInterrupt) and pressed:
            raise
        clash = isinstance(exc, RegistrationError)
        info.error = f"{_CLASH}{exc}" if clash else f"{hook_name} failed: {short_error(exc)}"
        dropped = [(c.kind, c.name) for c in _state.registry.by_plugin(impl.plugin_name)]
        dropped += [(k, getattr(c, "name", None)) for k, c in attempted]
        _state.registry.unregister_plugin(impl.plugin_name)
        for k, n in dropped:
            _state.registry.mark_unavailable(k, n, impl.plugin_name, info.error)


def is_collected() -> bool:
    """Whether this process has already run the register hooks (imported the components, and torch)."""
    return _state.collected


def get_registry() -> Registry:
    """The registry, after running the register hooks once (only commands that need components pay for it)."""
    load_plugins()
    if not _state.collected:
        _state.collected = True
        _collect()
    return _state.registry


def plugin_infos() -> list[PluginInfo]:
    get_registry()
    return sorted(_state.plugins.values(), key=lambda p: p.name)


def reset_for_tests() -> None:
    """Forget everything loaded (tests use this to reload under a different SNNKIT_LOAD_PLUGINS)."""
    global pm, _state
    _state, pm = _State(), _new_pm()
