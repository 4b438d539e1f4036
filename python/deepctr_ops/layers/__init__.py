"""Keras layers of deepctr-ops (all re-exported from `layers.sequence`)."""

from . import sequence
from .sequence import *  # noqa: F403

__all__ = sequence.__all__
