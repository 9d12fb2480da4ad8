"""Semantic IDs for generative recommendation: tokenizers, the item ↔ ID table, and constrained decoding.

Item embeddings → `RQKMeans` or `RQVAETokenizer` codes [n, L] → `SemanticIds.from_codes` (adds the
collision digit) → `TokenLayout` token ids → `PrefixTrie` → `constrained_beam_search`.
"""

from recsys.semantic_ids.beam import BeamResult, constrained_beam_search
from recsys.semantic_ids.collisions import add_collision_digit, collision_groups
from recsys.semantic_ids.report import LevelStats, SemanticIdReport, semantic_id_report
from recsys.semantic_ids.rq_kmeans import RQKMeans
from recsys.semantic_ids.rq_vae import RQVAE, RQVAETokenizer
from recsys.semantic_ids.table import SemanticIds
from recsys.semantic_ids.tokens import TokenLayout
from recsys.semantic_ids.trie import PrefixTrie

__all__ = [
    "BeamResult",
    "LevelStats",
    "PrefixTrie",
    "RQKMeans",
    "RQVAE",
    "RQVAETokenizer",
    "SemanticIdReport",
    "SemanticIds",
    "TokenLayout",
    "add_collision_digit",
    "collision_groups",
    "constrained_beam_search",
    "semantic_id_report",
]
