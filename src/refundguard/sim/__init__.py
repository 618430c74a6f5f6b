"""The marketplace simulator: a world in the data contract, for tests, demos and benchmarks."""
