"""Rich rendering helpers shared by the commands."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


class RichProgress:
    """A progress wrapper for the core's ``progress=`` argument: ``progress(iterable, total, description)``."""

    def __init__(self, console: Console = err_console, enabled: bool = True):
        self.enabled = enabled
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)

    def __enter__(self):
        if self.enabled:
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self._progress.__exit__(*exc)

    def __call__(self, iterable, total=None, description=""):
        if not self.enabled:
            yield from iterable
            return
        task = self._progress.add_task(description, total=total)
        try:
            for item in iterable:
                yield item
                self._progress.advance(task)
        finally:
            self._progress.remove_task(task)


def epoch_table() -> Table:
    t = Table(title=None, show_edge=False)
    for col in ("epoch", "train loss", "train acc", "val acc", "test loss", "test acc", "seconds"):
        t.add_column(col, justify="right")
    return t


def epoch_row(rec) -> list[str]:
    return [str(rec.epoch), f"{rec.train_loss:.4f}", f"{100 * rec.train_accuracy:.2f}%",
            "-" if getattr(rec, "val_accuracy", None) is None else f"{100 * rec.val_accuracy:.2f}%",
            f"{rec.test_loss:.4f}", f"{100 * rec.test_accuracy:.2f}%", f"{rec.seconds:.1f}"]


def warn_damaged(run_dir) -> None:
    """Print the one-line note of a run whose ``metrics.jsonl`` has damaged lines (the same for every command)."""
    from snnkit_core.engine.rundir import RunDir

    run = RunDir(run_dir)
    run.metrics()
    note = run.damage_note()
    if note:
        err_console.print(f"warning: {note}", markup=False, highlight=False, soft_wrap=True)


def plan_notes(report: list[dict]) -> list[str]:
    """One line per implementation that cannot run in this process at all (e.g. no C compiler), naming the layers
    it would have run and why, from ``Network.plan_report()``: what a command prints when it starts."""
    notes: dict[tuple[str, str], list[str]] = {}
    for layer in report:
        for skip in (s for s in layer["skipped"] if s["unavailable"]):
            notes.setdefault((skip["implementation"], skip["reason"]), []).append(layer["layer"])
    return [f"{impl} cannot run here, so {', '.join(layers)} use{'s' * (len(layers) == 1)} a slower scan: {why}"
            for (impl, why), layers in notes.items()]
