"""recsys.semantic_ids."""
