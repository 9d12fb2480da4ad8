"""Pure nn.Modules: retrieval models (forward, encode, item_embeddings, objective, n_items) and generative
models (loss, generate)."""

from recsys.models.bert4rec import BERT4Rec
from recsys.models.recformer import Recformer
from recsys.models.sasrec import SASRec
from recsys.models.tiger import TIGER

__all__ = ["BERT4Rec", "Recformer", "SASRec", "TIGER"]
