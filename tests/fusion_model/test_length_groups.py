"""Length grouping keeps every row's inputs and puts rows back in order."""
import numpy as np

from fusion_model.bucketing import length_groups, run_grouped, sub_feeds


def packed(lengths, images):
    T = max(lengths)
    ids = np.zeros((len(lengths), T), np.int64)
    mask = np.zeros((len(lengths), T), np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = 1000 * (i + 1) + np.arange(n)
        mask[i, :n] = 1
    has = np.array([1.0 if x else 0.0 for x in images], np.float32)
    pix = np.array([np.full((3, 2, 2), float(i + 1), np.float32) for i, x in enumerate(images) if x],
                   np.float32).reshape(-1, 3, 2, 2)
    return {"input_ids": ids, "attention_mask": mask, "pixel_values": pix, "has_image": has}


def fake_model(feeds):
    """A row's 'probabilities' encode its first token, token count and image value: any mix-up shows."""
    n_tok = feeds["attention_mask"].sum(1).astype(np.float32)
    img = np.zeros(len(n_tok), np.float32)
    img[feeds["has_image"] > 0.5] = feeds["pixel_values"][:, 0, 0, 0]
    assert feeds["input_ids"].shape[1] == max(int(n_tok.max()), 1)  # cut to the group's longest text
    return np.stack([feeds["input_ids"][:, 0].astype(np.float32), n_tok, img], axis=1)


def test_groups_are_sorted_by_length_and_bounded():
    mask = packed([5, 1, 9, 3, 7], [0, 0, 0, 0, 0])["attention_mask"]
    groups = length_groups(mask, max_rows=2)
    assert [g.tolist() for g in groups] == [[1, 3], [0, 4], [2]]


def test_run_grouped_equals_one_call_row_by_row():
    lengths = [12, 3, 40, 7, 7, 25, 1, 30, 2, 19, 5]
    images = [1, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1]
    feeds = packed(lengths, images)
    whole = fake_model(feeds)
    grouped = run_grouped(fake_model, feeds, max_rows=3)
    np.testing.assert_array_equal(grouped, whole)
    assert whole[:, 2].tolist() == [1, 0, 3, 0, 0, 6, 7, 0, 0, 0, 11]


def test_sub_feeds_picks_the_images_of_its_rows():
    feeds = packed([4, 2, 6, 3], [0, 1, 0, 1])
    sub = sub_feeds(feeds, np.array([3, 1]))
    assert sub["pixel_values"][:, 0, 0, 0].tolist() == [4.0, 2.0]
    assert sub["input_ids"].shape == (2, 3)
