"""Text features of the skeleton model, shared by its training script and its Triton model.

Character n-grams hashed into a fixed space: no vocabulary to ship, works for scripts without
spaces (Chinese, Japanese) as well as for Latin ones. sklearn's HashingVectorizer is stateless, so
training and serving compute exactly the same features from these parameters alone.
"""
from __future__ import annotations

from sklearn.feature_extraction.text import HashingVectorizer

LABELS = ("negative", "neutral", "positive")
FEATURE_PARAMS = dict(
    analyzer="char_wb",
    ngram_range=(1, 4),
    n_features=2**18,
    lowercase=True,
    alternate_sign=False,
    norm="l2",
    sublinear_tf=None,
)


def vectorizer() -> HashingVectorizer:
    params = {k: v for k, v in FEATURE_PARAMS.items() if k != "sublinear_tf"}
    return HashingVectorizer(**params, dtype="float32")
