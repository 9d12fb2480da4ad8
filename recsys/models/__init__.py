"""Retrieval models: pure nn.Modules exposing forward, encode, item_embeddings, objective and n_items."""

from recsys.models.bert4rec import BERT4Rec
from recsys.models.sasrec import SASRec

__all__ = ["BERT4Rec", "SASRec"]
