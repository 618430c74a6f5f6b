"""Column and value mappings that ship with refundguard (YAML files, see refundguard.mapping)."""
