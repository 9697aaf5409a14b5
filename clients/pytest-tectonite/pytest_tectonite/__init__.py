"""pytest fixtures for Tectonite; see `pytest_tectonite.plugin`."""

from pytest_tectonite.server import Clock, EmulatorError, Faults, Journal, Tectonite

__all__ = ["Clock", "EmulatorError", "Faults", "Journal", "Tectonite"]
