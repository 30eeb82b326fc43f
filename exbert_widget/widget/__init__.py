"""The notebook widget: traits, binary array transport, and corpus search glue."""

from .view import ExBertView

__all__ = ["ExBertView"]
