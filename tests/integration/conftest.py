"""Fixtures shared by several integration test modules."""

from tests.integration.console_site import browser, console_site

__all__ = ["browser", "console_site"]
