"""Raw public datasets into the prepared-dataset contract (polars only)."""
