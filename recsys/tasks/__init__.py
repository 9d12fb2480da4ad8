"""recsys.tasks."""
