"""Otterwiki on every wiki: the only package that imports Otterwiki (in `loader.py`)."""
from .host import OtterwikiHost

__all__ = ["OtterwikiHost"]
