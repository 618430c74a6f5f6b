"""The data contract: the input tables' schemas and the vocabulary every layer shares."""
