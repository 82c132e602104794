"""Rich progress bars for long work (sampling, generation, training), on stderr.

One bar counts the *steps* of the whole job (every network evaluation of every slice), so
its rate and ETA move after each step, not once per slice; its description names the slice
in progress. Disabled bars cost nothing.

Rich shows one live display at a time: a command that already shows a progress display (the
row bar of ``mrirecon evaluate``) registers it with :func:`hosted`, and every
:class:`StepProgress` opened meanwhile adds its bar to that display instead of starting its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["StepProgress", "hosted"]

_HOSTS: list = []


@contextlib.contextmanager
def hosted(progress) -> Iterator[None]:
    """While inside, :class:`StepProgress` bars are added to ``progress`` (a live ``rich.progress.Progress``)."""
    _HOSTS.append(progress)
    try:
        yield
    finally:
        _HOSTS.remove(progress)


class StepProgress:
    """``with StepProgress(enabled, total, label) as bar: bar.describe(...); bar.advance()``.

    Parameters
    ----------
    enabled : bool
    total : int
        Steps of the whole job.
    label : str
        Shown before the bar (``"AID"``, ``"train UNet"``).
    fields : dict, optional
        Extra text fields (``{"loss": "-"}``) shown after the bar, updated by :meth:`update`.
    """

    def __init__(self, enabled: bool, total: int, label: str, fields: dict[str, str] | None = None):
        self.enabled, self.total, self.label = enabled, int(total), label
        self.fields = dict(fields or {})
        self._bar = None
        self._task = None
        self._hosted = False

    def __enter__(self) -> "StepProgress":
        if self.enabled and _HOSTS:
            self._bar, self._hosted = _HOSTS[-1], True
            self._task = self._bar.add_task(self.label, total=self.total, **self.fields)
        elif self.enabled:
            from rich import progress as rp
            from rich.console import Console

            columns = [
                rp.TextColumn(f"[bold]{self.label}[/bold]"),
                rp.BarColumn(),
                rp.MofNCompleteColumn(),
                rp.TextColumn("{task.description}"),
                *[rp.TextColumn(f"{k} {{task.fields[{k}]}}") for k in self.fields],
                rp.TimeElapsedColumn(),
                rp.TextColumn("eta"),
                rp.TimeRemainingColumn(),
            ]
            self._bar = rp.Progress(*columns, console=Console(stderr=True))
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.total, **self.fields)
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            if self._hosted:
                self._bar.remove_task(self._task)
            else:
                self._bar.__exit__(*exc)
            self._bar = None

    def describe(self, text: str) -> None:
        """Say what is being worked on (e.g. ``"slice 3/16"``)."""
        if self._bar is not None:
            self._bar.update(self._task, description=f"  {self.label}: {text}" if self._hosted else text)

    def advance(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def update(self, completed: int | None = None, **fields: str) -> None:
        """Set the completed count and/or the extra fields."""
        if self._bar is not None:
            kw = {} if completed is None else {"completed": completed}
            self._bar.update(self._task, **kw, **fields)
