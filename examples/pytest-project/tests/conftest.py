import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the `shop` package


@pytest.fixture(autouse=True)
def pinned_clock(tectonite_clock):
    """Every test sees 2 January 2026, the day after the init directory's data was written
    (the reset marker runs first, then this)."""
    tectonite_clock.freeze("2026-01-02T00:00:00Z")
