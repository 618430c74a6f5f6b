"""Column and value mappings shipped with refundguard (YAML; see refundguard.data.mapping)."""
