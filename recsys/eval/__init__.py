"""recsys.eval."""
