"""Point-in-time features: events, the catalog, the time split, review text signals, Spark."""
