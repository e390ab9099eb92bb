"""Ctrl-C during a run: whether it was pressed, and waits that end early when it is."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class Cancellation:
    """Whether Ctrl-C was pressed; waits between attempts end early when it is."""

    def __init__(self, sleep: Callable[[float], Any] | None = None) -> None:
        self.cancelled = False
        self._wake = threading.Event()
        self.sleep: Callable[[float], Any] = sleep or self._wake.wait

    def cancel(self) -> None:
        """Launch nothing more; wake whoever waits for a retry."""
        self.cancelled = True
        self._wake.set()

    def wake(self) -> None:
        """Wake whoever waits for a retry."""
        self._wake.set()
