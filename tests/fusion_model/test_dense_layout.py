"""The GPU variant's tensor layout: one image slot per row, int32 ids, length buckets."""
import numpy as np
import pytest

from fusion_model.dense_layout import bucket_length, dense_feeds, pad_to_bucket, per_request_feeds


def packed(lengths, images):
    """Packed feeds like the Preprocessor makes: rows padded to the longest, images packed."""
    T = max(lengths)
    ids = np.zeros((len(lengths), T), np.int64)
    mask = np.zeros((len(lengths), T), np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = np.arange(1, n + 1) + 100 * i
        mask[i, :n] = 1
    has = np.array([1.0 if x else 0.0 for x in images], np.float32)
    pix = np.stack([np.full((3, 4, 4), float(i + 1), np.float32) for i, x in enumerate(images) if x]) \
        if any(images) else np.zeros((0, 3, 4, 4), np.float32)
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pix, "has_image": has}


def test_bucket_length_rounds_up_and_keeps_overlong():
    assert [bucket_length(n) for n in (1, 16, 17, 33, 128)] == [16, 16, 32, 64, 128]
    assert bucket_length(130) == 130


def test_dense_feeds_put_each_image_in_its_row_and_zeros_elsewhere():
    f = dense_feeds(packed([3, 2, 4], [False, True, True]))
    assert f["pixel_values"].shape == (3, 3, 4, 4)
    assert (f["pixel_values"][0] == 0).all()
    assert (f["pixel_values"][1] == 2).all() and (f["pixel_values"][2] == 3).all()
    assert f["input_ids"].dtype == np.int32 and f["attention_mask"].dtype == np.int32


def test_dense_feeds_refuse_inconsistent_image_count():
    f = packed([3, 2], [True, False])
    f["has_image"] = np.array([1.0, 1.0], np.float32)
    with pytest.raises(ValueError):
        dense_feeds(f)


def test_pad_to_bucket_keeps_tokens_and_pads_with_pad_id():
    f = packed([5, 20], [False, False])
    ids, mask = pad_to_bucket(f["input_ids"], f["attention_mask"], pad_id=7)
    assert ids.shape == (2, 32) and mask.shape == (2, 32)
    assert (ids[1, :20] == f["input_ids"][1, :20]).all()
    assert (ids[1, 20:] == 7).all() and mask[1, 20:].sum() == 0
    assert mask.sum() == 25


def test_per_request_feeds_pad_each_request_to_its_own_bucket():
    f = packed([3, 40, 10, 2], [True, False, False, True])
    a, b = per_request_feeds(f, [1, 3], pad_id=0)
    assert a["input_ids"].shape == (1, 16) and b["input_ids"].shape == (3, 64)
    assert (a["pixel_values"][0] == 1).all()  # row 0's own image
    assert a["has_image"].tolist() == [1.0] and b["has_image"].tolist() == [0.0, 0.0, 1.0]
    assert (b["pixel_values"][2] == 4).all()  # the second packed image (row 3) lands in its own row
    assert (b["input_ids"][0, :40] == f["input_ids"][1, :40]).all()
