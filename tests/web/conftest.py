"""Fixtures shared by the page tests."""

from tests.web.browser import launch

__all__ = ["launch"]
