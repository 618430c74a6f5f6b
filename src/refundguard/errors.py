"""The errors refundguard raises on purpose.

Each is a user's mistake or an unusable input, not a bug: the CLI prints the message
as one line on stderr and exits non-zero, without a traceback.
"""

from __future__ import annotations


class RefundGuardError(Exception):
    """Base of every documented refundguard error."""


class ConfigError(RefundGuardError):
    """params.yaml, or an option, holds a value that cannot be used."""


class DataContractError(RefundGuardError):
    """A table is unusable: unreadable, missing a required column, or mostly rejected."""


class ModelError(RefundGuardError):
    """A model folder is missing, corrupted, or made for another feature catalog."""


class InputError(RefundGuardError):
    """Rows passed to a scorer do not have the columns or types it needs."""
