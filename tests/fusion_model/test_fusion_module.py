"""FusionClassifier and FusionModel (fusion_model/fusion.py): pure torch, tiny random encoders."""
from __future__ import annotations

import pytest

import torch  # noqa: E402
from torch import nn  # noqa: E402

from fusion_model.fusion import LABELS, FusionClassifier, FusionConfig, FusionModel  # noqa: E402
from contracts.schema import LABELS as SCHEMA_LABELS  # noqa: E402

TD, ID = 12, 10  # text / image embedding sizes of the tiny encoders


def make_fusion(seed: int = 0, **kw) -> FusionClassifier:
    torch.manual_seed(seed)
    cfg = FusionConfig(text_dim=TD, image_dim=ID, dim=16, hidden=16, gate_hidden=8, **kw)
    return FusionClassifier(cfg).eval()


def inputs(batch: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    text = torch.randn(batch, TD, generator=g)
    image = torch.randn(batch, ID, generator=g)
    has_image = (torch.arange(batch) % 2 == 0).float()
    has_text = torch.ones(batch)
    return text, image, has_image, has_text


class TinyText(nn.Module):
    """(input_ids, attention_mask) -> [B, TD]: embedding + masked mean."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, TD)

    def forward(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).float()
        return (self.emb(input_ids) * m).sum(1) / m.sum(1).clamp(min=1e-9)


class TinyCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(4, ID))

    def forward(self, pixel_values):
        return self.net(pixel_values)


def make_model(seed: int = 0) -> FusionModel:
    torch.manual_seed(seed)
    return FusionModel(TinyText(), TinyCNN(), make_fusion(seed)).eval()


def test_labels_match_the_schema():
    assert tuple(LABELS) == tuple(SCHEMA_LABELS)


@pytest.mark.parametrize("gate", ["sigmoid", "softmax"])
@pytest.mark.parametrize("batch", [1, 7])
def test_gates_are_in_range_and_shapes(gate, batch):
    f = make_fusion(gate=gate)
    text, image, has_image, has_text = inputs(batch)
    logits, gates = f(text * 50, image * 50, has_image, has_text, return_gates=True)  # large inputs too
    assert logits.shape == (batch, 3)
    assert gates.shape == (batch, 2)
    assert torch.isfinite(logits).all()
    assert ((gates > 0) & (gates < 1)).all()
    if gate == "softmax":
        torch.testing.assert_close(gates.sum(-1), torch.ones(batch))
    assert f(text, image, has_image).shape == (batch, 3)  # has_text defaults to all present


def test_gates_differ_per_example():
    f = make_fusion()
    text, image, has_image, has_text = inputs(7)
    _, gates = f(text, image, has_image, has_text, return_gates=True)
    assert gates[:, 0].std() > 0 and gates[:, 1].std() > 0


def test_no_image_path_ignores_image_embedding_and_uses_learned_vector():
    f = make_fusion()
    text, image, _, has_text = inputs(7)
    none = torch.zeros(7)
    a = f(text, image, none, has_text)
    b = f(text, torch.randn(7, ID) * 100, none, has_text)
    torch.testing.assert_close(a, b)
    with torch.no_grad():
        f.no_image.add_(1.0)  # the learned "no image" input is what the model sees instead
    assert not torch.allclose(a, f(text, image, none, has_text))
    assert not torch.allclose(a, f(text, image, torch.ones(7), has_text))  # an image changes the answer


def test_image_only_path_ignores_text_embedding():
    f = make_fusion()
    text, image, _, _ = inputs(7)
    ones, zeros = torch.ones(7), torch.zeros(7)
    a, gates = f(text, image, ones, zeros, return_gates=True)
    torch.testing.assert_close(a, f(torch.randn(7, TD) * 100, image, ones, zeros))
    assert not torch.allclose(a, f(text, torch.randn(7, ID), ones, zeros))  # the image decides
    assert ((gates > 0) & (gates < 1)).all()
    # nothing at all still answers (the learned prior), finite
    assert torch.isfinite(f(text, image, zeros, zeros)).all()


def test_modality_dropout_only_in_train_mode():
    f = make_fusion(p_drop_image=1.0, p_drop_text=0.0, dropout=0.0)
    text, image, has_image, has_text = inputs(7)
    f.eval()
    t, i = f.modality_dropout(has_text, has_image)
    assert torch.equal(t, has_text) and torch.equal(i, has_image)
    torch.testing.assert_close(f(text, image, has_image, has_text), f(text, image, has_image, has_text))
    f.train()
    t, i = f.modality_dropout(has_text, has_image)
    assert i.sum() == 0 and torch.equal(t, has_text)  # every image dropped, text kept
    # in train mode (head dropout 0) the answer equals the eval answer without images
    train_out = f(text, image, has_image, has_text)
    f.eval()
    torch.testing.assert_close(train_out, f(text, image, torch.zeros(7), has_text))


def test_modality_dropout_never_drops_both():
    f = make_fusion(p_drop_image=0.5, p_drop_text=1.0).train()
    has_text, has_image = torch.ones(1000), torch.ones(1000)
    t, i = f.modality_dropout(has_text, has_image)
    assert ((t + i) >= 1).all()
    assert 300 < int(i.sum()) < 700  # ~half the images dropped; those rows kept their text
    assert torch.equal(t, 1 - i)
    t2, i2 = f.modality_dropout(torch.ones(4), torch.zeros(4))  # text-only rows keep their text
    assert torch.equal(t2, torch.ones(4)) and torch.equal(i2, torch.zeros(4))


def _batch(batch: int, with_images: list[int], seq: int = 6, seed: int = 3):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 50, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    mask[:, seq // 2:] = (torch.arange(batch) % 2 == 0).long().unsqueeze(1)  # some rows padded
    has_image = torch.zeros(batch)
    has_image[with_images] = 1.0
    pixels = torch.randn(len(with_images), 3, 16, 16, generator=g)
    return ids, mask, pixels, has_image


@pytest.mark.parametrize("batch, with_images", [(1, []), (1, [0]), (7, []), (7, [0, 3, 6]), (7, list(range(7)))])
def test_fusion_model_shapes_and_probabilities(batch, with_images):
    m = make_model()
    probs, gates = m(*_batch(batch, with_images))
    assert probs.shape == (batch, 3) and gates.shape == (batch, 2)
    torch.testing.assert_close(probs.sum(-1), torch.ones(batch))
    assert ((gates > 0) & (gates < 1)).all()


def test_fusion_model_routes_packed_images_to_their_rows():
    m = make_model()
    ids, mask, pixels, has_image = _batch(7, [1, 4, 5])
    probs, gates = m(ids, mask, pixels, has_image)
    text_emb = m.text_encoder(ids, mask)
    image_emb = torch.zeros(7, ID)
    image_emb[[1, 4, 5]] = m.image_encoder(pixels)
    logits, g = m.fusion(text_emb, image_emb, has_image, torch.ones(7), return_gates=True)
    torch.testing.assert_close(probs, torch.softmax(logits, -1))
    torch.testing.assert_close(gates, g)


def test_fusion_model_row_without_text_is_image_only():
    m = make_model()
    ids, mask, pixels, has_image = _batch(2, [0, 1])
    mask[0] = 0  # row 0: no text
    probs, _ = m(ids, mask, pixels, has_image)
    ids2 = ids.clone()
    ids2[0] = 7  # other token ids on a row without text change nothing
    torch.testing.assert_close(probs, m(ids2, mask, pixels, has_image)[0])


def test_fusion_model_rejects_mismatched_image_count():
    m = make_model()
    ids, mask, pixels, has_image = _batch(3, [0, 1])
    with pytest.raises(ValueError, match="has_image"):
        m(ids, mask, pixels[:1], has_image)


def test_training_step_moves_only_fusion_parameters():
    m = make_model().train()
    for p in list(m.text_encoder.parameters()) + list(m.image_encoder.parameters()):
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1)
    probs, _ = m(*_batch(7, [0, 2]))
    loss = -torch.log(probs[:, 0]).mean()
    loss.backward()
    opt.step()
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("fusion."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("fusion."))
