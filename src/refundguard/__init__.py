"""refundguard: find buyers who abuse after-sales service, with evidence a person can check.

Importing the package does nothing beyond defining names: no files, no logging set-up,
no tracking URI. ``Scorer`` is imported lazily so that ``import refundguard`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Scorer", "__version__"]

if TYPE_CHECKING:
    from refundguard.serving.scorer import Scorer


def __getattr__(name: str) -> Any:
    if name == "Scorer":
        from refundguard.serving.scorer import Scorer

        return Scorer
    raise AttributeError(f"module 'refundguard' has no attribute {name!r}")
