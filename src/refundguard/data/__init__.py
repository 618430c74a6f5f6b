"""Data in and out: readers, atomic writers, column mappings and validation to the contract."""
