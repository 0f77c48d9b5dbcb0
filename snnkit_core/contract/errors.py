"""Every error snnkit expects; the CLI shows each as one message (what happened, whose fault, the fix)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str], n: int = 3) -> str:
    """`` Did you mean 'a' or 'b'?`` for the close matches of ``name`` among ``choices``, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


def torch_error_reason(exc: BaseException) -> str:
    """The useful line of a ``torch.load`` error, without torch's "Please file an issue" and allow-listing
    ("Please use ...") advice: the fault is the file's, not torch's, and the advice is for code authors."""
    text = str(exc).split("WeightsUnpickler error:", 1)[-1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "file an issue" not in ln.lower()]
    return (lines[0] if lines else type(exc).__name__).split(" Please use", 1)[0]


class SnnkitError(Exception):
    """An expected failure with a message meant for the user."""


class UnknownComponentError(SnnkitError):
    """A component name nothing registered; says why (``note``) or offers close matches."""

    def __init__(self, kind: str, name: str, available: Iterable[str], note: str = ""):
        available = sorted(available)
        close = [] if note else difflib.get_close_matches(name, available, n=3, cutoff=0.5)
        label = "components" if kind == "component" else f"{kind} components"
        super().__init__(
            f"unknown {kind} {name!r}." + (f" {kind.title()} {name!r}: {note}." if note else did_you_mean(name, close))
            + f" Installed {label}: {', '.join(available) or '(none)'}. `snnkit list-plugins` shows which plugin "
            "provides what.")
        self.kind, self.name, self.close_matches = kind, name, close


class RegistrationError(SnnkitError):
    """A plugin tried to register something invalid (wrong type, bad name, duplicate)."""


class IncompatibleError(SnnkitError):
    """A neuron / connectivity / rule combination that cannot train together."""


class ConfigError(SnnkitError, ValueError):
    """A malformed config file, option or parameter override (also a ValueError, for Python callers)."""


class DatasetError(SnnkitError):
    """Missing, truncated or malformed dataset files; the message names the file and the expected layout."""


class NaNLossError(SnnkitError):
    """Training produced a non-finite loss; the run directory keeps the last good checkpoint."""


class CheckpointError(SnnkitError):
    """A run directory or checkpoint that cannot be read or resumed."""


class MissingDependencyError(SnnkitError):
    """An optional extra (matplotlib, tensorboard, nir) that a command needs is not installed; says what to install."""


class RunDirError(SnnkitError):
    """A run directory that this process may not write: owned by another process, not a run, or unwritable."""


class DivergedError(NaNLossError):
    """The loss grew by orders of magnitude (still finite); the run directory keeps the last good checkpoint."""
