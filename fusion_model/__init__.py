"""babelwatch's sentiment model: frozen encoders + gated fusion + head, exported to ONNX.

Modules (imported lazily: ``fusion_model.preprocess`` needs only numpy, Pillow and tokenizers,
so the Triton Python backend can use it next to onnxruntime without torch):

- ``encoders``   TextEncoder / ImageEncoder protocols; HFTextEncoder, HFVisionEncoder, EfficientNetLite0Encoder
- ``fusion``     FusionClassifier (h = alpha * x_text + beta * x_image -> 3 logits), FusionModel (export graph)
- ``preprocess`` raw text / image bytes -> ONNX feeds (serving and training)
- ``data``       the offline corpora with language tags, deterministic subsample
- ``synthetic``  label-correlated synthetic images
- ``train``      cached frozen-encoder embeddings; training of fusion + head
- ``export``     ONNX export, onnxruntime-vs-torch verification, artifact directory
- ``build``      ``fusion_model.build.build(force=False) -> Path``: convert -> embed -> train -> export, cached
- ``evaluate``   accuracy / macro-F1 per language: zero-shot, in-language k-fold, text/image/fused
"""
from __future__ import annotations
