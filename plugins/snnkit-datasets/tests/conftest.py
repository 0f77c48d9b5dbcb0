"""Shared fixtures of the datasets plugin's tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def progress_seen():
    """``(hook, seen)``: a ``preprocessing_progress`` hook that records ``(total, items, description)`` per loop."""
    seen: list[tuple] = []

    def hook(iterable, total=None, description=""):
        items = list(iterable)
        seen.append((total, len(items), description))
        return items

    return hook, seen
