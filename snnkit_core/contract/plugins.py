"""Plugin loading over the ``snnkit`` entry-point group.

``load_plugins()`` is idempotent. ``SNNKIT_LOAD_PLUGINS`` chooses what loads: unset loads every installed
plugin; a comma-separated list loads only those (entry-point or distribution names); the empty string loads
none. A plugin that fails to import, or whose hook raises, is recorded as broken with its error and the
rest keep working.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import json
import os
import re
import sys
import traceback
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pluggy
from attrs import define, field

from snnkit_core.contract import hookspecs, implementations
from snnkit_core.contract.errors import RegistrationError, SnnkitError
from snnkit_core.contract.registry import Registry

ENV_VAR = "SNNKIT_LOAD_PLUGINS"

_HOOK_KIND = {
    "register_neurons": "neuron",
    "register_connectivity": "connectivity",
    "register_rules": "rule",
    "register_datasets": "dataset",
}


@define
class PluginInfo:
    name: str
    version: str | None = None
    distribution: str | None = None
    error: str | None = None


@define
class _State:
    pm: pluggy.PluginManager
    registry: Registry = field(factory=Registry)
    plugins: dict[str, PluginInfo] = field(factory=dict)
    loaded: bool = False
    collected: bool = False  # the register_* hooks have run (they import the components, and torch)


def _new_pm() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("snnkit")
    pm.add_hookspecs(hookspecs)
    return pm


_state = _State(pm=_new_pm())
pm = _state.pm


def _short_error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


@contextlib.contextmanager
def _quarantine() -> Iterator[io.StringIO]:
    """Run a plugin's import with ``sys.argv`` reduced to the program name (a plugin that parses the command
    line at import must not see, or eat, snnkit's options) and its prints captured (they would corrupt
    ``--json`` output); what it printed is returned for the error message."""
    captured = io.StringIO()
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
            yield captured
    finally:
        sys.argv = argv


def _with_output(error: str, captured: io.StringIO) -> str:
    text = captured.getvalue().strip()
    return error + (f"; it printed: {text}" if text else "")


def _hook_problems(module, name: str) -> str | None:
    """A hook-marked function whose name snnkit does not know (a misspelt hook), checked per plugin so that one
    plugin's typo does not stop every command."""
    specs = sorted(n for n in dir(pm.hook) if not n.startswith("_"))
    for attr in dir(module):
        try:
            opts = pm.parse_hookimpl_opts(module, attr)
        except Exception:  # noqa: BLE001 - an attribute that cannot even be inspected is not a hook
            continue
        if opts is None or attr in specs or opts.get("optionalhook"):
            continue
        close = difflib.get_close_matches(attr, specs, n=1)
        return (
            f"it implements {attr!r}, which is not a snnkit hook" + (f" (did you mean {close[0]!r}?)" if close else "")
            + f"; snnkit's hooks are {', '.join(specs)}. This is an issue with plugin {name!r}, not snnkit."
        )
    return None


def load_plugins() -> None:
    """Import every selected plugin of the ``snnkit`` entry-point group and build the registry once.

    Whatever one plugin does at import (raise any exception, ``SystemExit`` included; parse ``sys.argv``;
    print), or a misspelt or malformed hook, marks that plugin broken with the reason; the others load.
    """
    if _state.loaded:
        return
    _state.loaded = True
    selected = os.environ.get(ENV_VAR)
    allowed = None if selected is None else {s.strip() for s in selected.split(",") if s.strip()}
    for ep in entry_points(group="snnkit"):
        dist = ep.dist.name if ep.dist is not None else None
        if allowed is not None and ep.name not in allowed and dist not in allowed:
            continue
        info = PluginInfo(ep.name, ep.dist.version if ep.dist is not None else None, dist)
        _state.plugins[ep.name] = info
        captured = io.StringIO()
        try:
            with _quarantine() as captured:
                module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin must not take snnkit down, whatever it raises
            info.error = _with_output(_short_error(exc), captured)
            continue
        if pm.is_registered(module) or pm.get_plugin(ep.name) is not None:
            continue
        problem = _hook_problems(module, ep.name)
        if problem:
            info.error = problem
            continue
        try:
            pm.register(module, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - pluggy's validation of hook signatures, per plugin
            info.error = f"{type(exc).__name__}: {exc}. This is an issue with plugin {ep.name!r}, not snnkit."


def _ensure_collected() -> None:
    """Run the register_* hooks once (after :func:`load_plugins`); only commands that need components pay for it."""
    load_plugins()
    if not _state.collected:
        _state.collected = True
        _collect()


def register_plugin(obj, name: str, version: str | None = None) -> None:
    """Register an in-process plugin (tests, notebooks) and add its components to the registry."""
    _ensure_collected()
    pm.register(obj, name=name)
    pm.check_pending()
    _state.plugins[name] = PluginInfo(name, version)
    _collect(only=name)


def unregister_plugin(name: str) -> None:
    plugin = pm.get_plugin(name)
    if plugin is not None:
        pm.unregister(plugin)
    _state.registry.unregister_plugin(name)
    _state.plugins.pop(name, None)


#: snnkit's own plugin distributions: on a name clash with a third-party plugin, theirs keep the name and the
#: other plugin is reported broken (so an installed add-on cannot silently replace ``lif`` or take down
#: ``snnkit-neurons`` with it)
FIRST_PARTY = frozenset({"snnkit-neurons", "snnkit-connectivity", "snnkit-rules", "snnkit-datasets"})


def _precedence(impl) -> tuple[bool, str]:
    info = _state.plugins.get(impl.plugin_name)
    dist = info.distribution if info is not None and info.distribution else ""
    canonical = re.sub(r"[-_.]+", "-", dist).lower()  # PEP 503: snnkit_neurons and snnkit-neurons are one name
    return (canonical not in FIRST_PARTY, impl.plugin_name)


def _collect(only: str | None = None) -> None:
    """Call each plugin's register_* hooks separately so the registry knows who registered what.

    Plugins are collected first-party first, then by name, so which one a duplicate name marks broken does not
    depend on entry-point order.
    """
    for hook_name, kind in _HOOK_KIND.items():
        hook = getattr(pm.hook, hook_name)
        for impl in sorted(hook.get_hookimpls(), key=_precedence):
            if only is not None and impl.plugin_name != only:
                continue
            info = _state.plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
            if info.error:
                if info.error.startswith(_CLASH):  # learn what else it would have provided, registering nothing
                    _call_quietly(impl, lambda cls, _k=kind, _p=impl.plugin_name: _state.registry.mark_unavailable(
                        _k, getattr(cls, "name", None), _p, info.error))
                continue
            attempted: list[tuple[str, object]] = []

            def register(cls, _kind=kind, _plugin=impl.plugin_name, _attempted=attempted):
                _attempted.append((_kind, cls))
                _state.registry.register(_kind, cls, _plugin)

            try:
                impl.function(register=register)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:
                if only is not None and isinstance(exc, SnnkitError):
                    raise
                if isinstance(exc, RegistrationError):
                    info.error = f"{_CLASH}{exc}"
                else:
                    info.error = f"{hook_name} failed: {_short_error(exc)}"
                dropped = [(c.kind, c.name) for c in _state.registry.by_plugin(impl.plugin_name)]
                dropped += [(k, getattr(c, "name", None)) for k, c in attempted]
                _state.registry.unregister_plugin(impl.plugin_name)
                for k, n in dropped:
                    _state.registry.mark_unavailable(k, n, impl.plugin_name, info.error)
    implementations.collect(pm, only, {n for n, i in _state.plugins.items() if i.error})


#: how a plugin's error starts when a registration of it was refused (name clash, wrong type, bad name)
_CLASH = "registration refused: "


def _call_quietly(impl, register) -> None:
    try:
        impl.function(register=register)
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - only used to name what a broken plugin would have provided
        pass


def get_registry() -> Registry:
    _ensure_collected()
    return _state.registry


def plugin_infos() -> list[PluginInfo]:
    _ensure_collected()
    return sorted(_state.plugins.values(), key=lambda p: p.name)


def reset_for_tests() -> None:
    """Forget everything loaded (tests use this to reload under a different SNNKIT_LOAD_PLUGINS)."""
    global pm
    _state.pm = pm = _new_pm()
    _state.registry = Registry()
    _state.plugins = {}
    _state.loaded = False
    _state.collected = False


def add_commands(cli) -> list[str]:
    """Let every plugin add its CLI commands; returns one message per plugin whose hook raised.

    Each plugin's hook runs on its own, so one failing hook neither hides the others' commands nor goes
    unnamed: the error is recorded on that plugin (``snnkit list-plugins`` shows it).
    """
    load_plugins()
    problems = []
    for impl in sorted(pm.hook.register_commands.get_hookimpls(), key=_precedence):
        info = _state.plugins.setdefault(impl.plugin_name, PluginInfo(impl.plugin_name))
        if info.error:
            continue
        try:
            impl.function(cli=cli)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            info.error = f"register_commands failed: {_short_error(exc)}"
            problems.append(f"plugin {impl.plugin_name!r} failed to add its commands: {info.error}")
    return problems


# ------------------------------------------------------------------------------------------ fast listing


def _listing_cache() -> Path:
    root = os.environ.get("SNNKIT_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "snnkit") / "plugin-listing.json"


def _fingerprint() -> str:
    """What a listing depends on: the plugin selection, every installed distribution's name and version, and
    the size and mtime of every source file of each ``snnkit`` entry point's package (editable installs
    change code without changing versions). Stat calls only; nothing is imported."""
    import hashlib
    import importlib.util
    from importlib.metadata import distributions

    h = hashlib.sha256()
    h.update(f"{ENV_VAR}={os.environ.get(ENV_VAR)!r}\n".encode())
    for d in sorted(f"{d.metadata['Name']} {d.version}" for d in distributions()):
        h.update(f"{d}\n".encode())
    roots = {Path(__file__).parent}
    for ep in sorted(entry_points(group="snnkit"), key=lambda e: e.name):
        h.update(f"ep {ep.name} {ep.value}\n".encode())
        top = ep.value.split(":")[0].split(".")[0]
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        if spec.submodule_search_locations:
            roots.update(Path(p) for p in spec.submodule_search_locations)
        elif spec.origin:
            roots.add(Path(spec.origin))
    for root in sorted(roots):
        files = [root] if root.is_file() else sorted(root.rglob("*.py"))
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            h.update(f"{f} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def listing() -> list[dict]:
    """``snnkit list-plugins`` rows: ``{"name", "version", "components": [{"kind", "name"}], "error"}``.

    Listing needs every component imported (and torch with them: seconds). When nothing installed changed
    since the last listing (:func:`_fingerprint`) and no plugin was broken, the rows come from a cache file
    instead. A process that already collected components (or registered a plugin in-process) always lists live.
    """
    use_cache = not _state.collected
    key = _fingerprint() if use_cache else None
    path = _listing_cache()
    if use_cache:
        try:
            cached = json.loads(path.read_text())
            if cached.get("fingerprint") == key:
                return cached["rows"]
        except (OSError, ValueError, AttributeError, KeyError):
            pass
    reg = get_registry()
    rows = [
        {"name": info.name, "version": info.version,
         "components": [{"kind": c.kind, "name": c.name} for c in reg.by_plugin(info.name)], "error": info.error}
        for info in plugin_infos()
    ]
    from_entry_points = {ep.name for ep in entry_points(group="snnkit")}
    if use_cache and all(r["error"] is None and r["name"] in from_entry_points for r in rows):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
            tmp.write_text(json.dumps({"fingerprint": key, "rows": rows}))
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only home only costs speed
    return rows
