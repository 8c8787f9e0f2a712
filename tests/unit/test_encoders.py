"""The pinned pretrained encoder: its files, its layers as the adapters compute them, and
text encoding that treats every row on its own."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sangsaeng.shared import encoders

ENCODER = "all-MiniLM-L6-v2"
TEXTS = ["I love this dried fruit, a great snack", "terrible. save your money", "",
         "stale and bland " * 40]


def test_the_encoder_files_match_their_pins() -> None:
    folder = encoders.folder(ENCODER)
    assert (folder / "model.safetensors").stat().st_size > 80_000_000
    # the check itself: a file that differs from the pin is refused
    assert encoders._sha256(folder / "tokenizer.json") == \
        encoders.ENCODERS[ENCODER].tokenizer_sha256


def test_layer_forward_is_the_encoder_layer() -> None:
    """The adapters' own computation of a layer equals transformers' BertLayer on every
    real token (padding positions are masked out of everything downstream)."""
    layer = 4
    before, mask = encoders.hidden_states(ENCODER, TEXTS, 32, layer)
    after, _ = encoders.hidden_states(ENCODER, TEXTS, 32, layer + 1)
    weights = encoders.layer_weights(ENCODER, layer)
    ours = encoders.layer_forward(weights.__getitem__, torch.from_numpy(before),
                                  torch.from_numpy(mask), encoders.ENCODERS[ENCODER].heads)
    real = torch.from_numpy(mask).bool()
    assert torch.allclose(ours[real], torch.from_numpy(after)[real], atol=1e-5)


def test_each_text_is_encoded_on_its_own() -> None:
    """A row's inputs are bit for bit the same whichever rows are beside it (the review
    of issue 16: batches padded rows to each other's lengths, so a neighbour changed a
    row's padded states, and its rounding): one record cannot move another's inputs."""
    together = encoders.embed(ENCODER, TEXTS, 64)
    alone = np.stack([encoders.embed(ENCODER, [t], 64)[0] for t in TEXTS])
    assert np.array_equal(together, alone)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    states, mask = encoders.hidden_states(ENCODER, ["good", TEXTS[3]], 32, 5)
    single, _ = encoders.hidden_states(ENCODER, ["good"], 32, 5)
    assert np.array_equal(states[0], single[0])
    assert not states[0][mask[0] == 0].any()  # nothing past its own tokens


def test_tokens_are_truncated_to_the_declared_length() -> None:
    ids, mask = encoders.tokenize(ENCODER, TEXTS, 16)
    assert ids.shape == mask.shape == (len(TEXTS), 16)
    assert mask[3].sum() == 16 and mask[2].sum() == 2  # [CLS] [SEP] of the empty text


def test_a_changed_encoder_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(encoders.ENCODERS, "tampered", dataclasses.replace(
        encoders.ENCODERS[ENCODER], weights_sha256="0" * 64))
    with pytest.raises(encoders.EncoderUnavailable, match="model.safetensors is missing or "
                                                          "differs from the pinned release"):
        encoders.folder("tampered")
