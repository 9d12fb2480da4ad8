"""recsys: sequential and generative recommendation, evaluated honestly."""

__version__ = "0.1.0"
