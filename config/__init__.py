"""Typed settings and logging setup, read once from the environment."""

from config.settings import Settings

__all__ = ["Settings"]
