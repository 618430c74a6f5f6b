"""``python -m refundguard`` runs the CLI."""

from refundguard.cli import main

main()
