"""One thin module per DVC stage: read params, load files, call one core, write and log.

Nothing imports this package except the CLI.
"""
