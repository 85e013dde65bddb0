"""Gated late fusion of a text and an image embedding: ``h = alpha * x_text + beta * x_image``.

As in the cross-lingual multimodal formulation: each modality is projected into a shared space
(``x_text``, ``x_image``), two gates per example (``alpha``, ``beta`` in (0, 1)) come from a small
MLP over both projected inputs and the presence flags, and a head maps ``h`` to three logits
(negative, neutral, positive). A missing modality is replaced by a learned vector (``no_image``,
``no_text``) before gating, so text-only, image-only and (degenerate) empty inputs all work.
Modality dropout in training (drop the image, or the text of an example that has an image)
teaches those paths and keeps the model from leaning on one modality.

``FusionModel`` chains frozen encoders + fusion into the graph that is exported to ONNX.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

LABELS = ("negative", "neutral", "positive")


@dataclass
class FusionConfig:
    text_dim: int
    image_dim: int
    dim: int = 256  # shared space
    hidden: int = 256  # head
    gate_hidden: int = 64
    n_classes: int = len(LABELS)
    dropout: float = 0.1
    p_drop_image: float = 0.3  # train mode: P(drop the image of an example that has one)
    p_drop_text: float = 0.2  # train mode: P(drop the text of an example that still has its image)
    gate: str = "sigmoid"  # "sigmoid": alpha, beta independent in (0,1); "softmax": alpha + beta = 1

    def to_dict(self) -> dict:
        return asdict(self)


class FusionClassifier(nn.Module):
    """forward(text_emb [B,Dt], image_emb [B,Di], has_image [B], has_text [B] | None) -> logits [B,3].

    ``return_gates=True`` also returns the gates [B, 2] (alpha, beta). Rows where has_image = 0
    ignore image_emb (it may hold anything, zeros by convention); likewise for text.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        if config.gate not in ("sigmoid", "softmax"):
            raise ValueError(f"gate must be 'sigmoid' or 'softmax', got {config.gate!r}")
        self.config = config
        c = config
        self.text_proj = nn.Sequential(nn.LayerNorm(c.text_dim), nn.Linear(c.text_dim, c.dim))
        self.image_proj = nn.Sequential(nn.LayerNorm(c.image_dim), nn.Linear(c.image_dim, c.dim))
        self.no_image = nn.Parameter(torch.randn(c.dim) * 0.02)
        self.no_text = nn.Parameter(torch.randn(c.dim) * 0.02)
        self.gate_mlp = nn.Sequential(nn.Linear(2 * c.dim + 2, c.gate_hidden), nn.GELU(),
                                      nn.Linear(c.gate_hidden, 2))
        self.head = nn.Sequential(nn.LayerNorm(c.dim), nn.Dropout(c.dropout), nn.Linear(c.dim, c.hidden),
                                  nn.GELU(), nn.Dropout(c.dropout), nn.Linear(c.hidden, c.n_classes))

    def modality_dropout(self, has_text: torch.Tensor, has_image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Train mode only: randomly hide modalities (never both). Eval mode: unchanged."""
        if not self.training or (self.config.p_drop_image <= 0 and self.config.p_drop_text <= 0):
            return has_text, has_image
        B = has_image.shape[0]
        drop_img = (torch.rand(B, device=has_image.device) < self.config.p_drop_image) & (has_text > 0.5)
        has_image = has_image * (~drop_img).to(has_image.dtype)
        drop_txt = (torch.rand(B, device=has_text.device) < self.config.p_drop_text) & (has_image > 0.5)
        has_text = has_text * (~drop_txt).to(has_text.dtype)
        return has_text, has_image

    def forward(self, text_emb: torch.Tensor, image_emb: torch.Tensor, has_image: torch.Tensor,
                has_text: torch.Tensor | None = None, return_gates: bool = False):
        has_image = has_image.to(text_emb.dtype).reshape(-1)
        has_text = (torch.ones_like(has_image) if has_text is None else has_text.to(text_emb.dtype).reshape(-1))
        has_text, has_image = self.modality_dropout(has_text, has_image)
        ti, ii = has_text.unsqueeze(-1), has_image.unsqueeze(-1)
        x_t = ti * self.text_proj(text_emb) + (1 - ti) * self.no_text
        x_i = ii * self.image_proj(image_emb) + (1 - ii) * self.no_image
        g = self.gate_mlp(torch.cat([x_t, x_i, ti, ii], dim=-1))
        gates = torch.sigmoid(g) if self.config.gate == "sigmoid" else torch.softmax(g, dim=-1)
        h = gates[:, :1] * x_t + gates[:, 1:] * x_i
        logits = self.head(h)
        return (logits, gates) if return_gates else logits


class FusionModel(nn.Module):
    """Encoders + fusion + softmax: the exported graph.

    forward(input_ids [B,T], attention_mask [B,T], pixel_values [N,3,H,W], has_image [B])
    -> probs [B,3], gates [B,2] (+ text_emb [B,Dt] with ``with_embedding``: the text encoder's
    normalised embedding, already computed for the head, returned for story grouping at no extra cost;
    meaningless in rows without text).

    ``pixel_values`` holds only the images of the rows with has_image = 1, in row order
    (N = has_image.sum(), possibly 0): the image encoder never runs on placeholders. A row whose
    attention mask is all zero has no text.
    """

    def __init__(self, text_encoder_module: nn.Module, image_encoder_module: nn.Module,
                 fusion: FusionClassifier, with_embedding: bool = False) -> None:
        super().__init__()
        self.with_embedding = with_embedding
        self.text_encoder = text_encoder_module
        self.image_encoder = image_encoder_module
        self.fusion = fusion
        self.image_dim = fusion.config.image_dim

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values: torch.Tensor,
                has_image: torch.Tensor):
        text_emb = self.text_encoder(input_ids, attention_mask)
        has_text = (attention_mask.sum(dim=1) > 0).to(text_emb.dtype)
        present = has_image > 0.5
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            n = int(present.sum())
            if pixel_values.shape[0] != n:
                raise ValueError(f"pixel_values holds {pixel_values.shape[0]} images but has_image marks {n} rows")
        feats = self.image_encoder(pixel_values)  # [N, Di]
        # row b takes image (number of images before it); rows without one take the zero row at N
        table = torch.cat([feats, torch.zeros(1, feats.shape[1], dtype=feats.dtype)], dim=0)
        before = torch.cumsum(present.to(torch.int64), dim=0) - 1
        index = torch.where(present, before, torch.full_like(before, 0) + feats.shape[0])
        image_emb = table.index_select(0, index)
        logits, gates = self.fusion(text_emb, image_emb, has_image, has_text, return_gates=True)
        if self.with_embedding:
            return torch.softmax(logits, dim=-1), gates, text_emb
        return torch.softmax(logits, dim=-1), gates
