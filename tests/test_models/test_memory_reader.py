"""EpisodicMemoryReader: IEM's inference-time read as a part (IEM Eq. 1-3), against IEMHead and
a brute-force soft kNN."""
import pytest
import torch
import torch.nn as nn

import lt_plugins  # noqa: F401  (registration)
from lt_plugins.models.heads import IEMHead
from lt_plugins.models.parts import EpisodicMemoryReader


def _filled_reader(**kw):
    torch.manual_seed(0)
    reader = EpisodicMemoryReader(num_classes=3, dim=4, capacity=5, num_neighbors=2, **kw)
    for _ in range(3):
        feats, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 0])
        reader.write(feats, torch.randn(6, 3), y)
    return reader


def test_write_stores_features_and_true_class_probability():
    reader = EpisodicMemoryReader(num_classes=3, dim=4, capacity=5, num_neighbors=2)
    feats, logits = torch.randn(4, 4), torch.randn(4, 3)
    y = torch.tensor([2, 0, 2, 1])
    reader.write(feats, logits, y)  # applied at once: nothing staged between steps
    mem = reader.memory
    assert not mem._step_pending and mem.num_valid().tolist() == [1, 1, 2]
    prob = logits.softmax(1)
    for c in range(3):
        stored = mem.keys[c][mem.valid[c]]
        vals = mem.values[c][mem.valid[c]]
        rows = (y == c).nonzero().flatten()
        torch.testing.assert_close(stored, feats[rows])
        torch.testing.assert_close(vals, prob[rows, c])
    assert not mem.keys.requires_grad and not mem.values.requires_grad


@pytest.mark.parametrize('reading', ['class', 'all', 'keys'])
@pytest.mark.parametrize('normalize', [False, True])
def test_scores_equal_iem_head_with_its_global_memory(reading, normalize):
    reader = _filled_reader(inference_read=reading, normalize_memory_scores=normalize,
                            inference_weights=dict(classifier=0.6, memory=0.3))
    iem = IEMHead(num_classes=3, in_channels=4, use_local_memory=False, global_capacity=5,
                  num_neighbors=2, inference_read=reading, normalize_memory_scores=normalize,
                  inference_weights=dict(classifier=0.6, global_memory=0.3))
    iem.global_memory.load_state_dict(reader.memory.state_dict())
    x = torch.randn(7, 4)
    torch.testing.assert_close(reader.scores(x, iem.fc(x)), iem.memory_scores(x))


def test_keys_reading_is_a_soft_knn_over_the_stored_keys():
    reader = _filled_reader(inference_read='keys', inference_weights=dict(classifier=0.0,
                                                                         memory=1.0))
    mem = reader.memory
    x = torch.randn(5, 4)
    ref = torch.zeros(5, 3)
    for i in range(5):
        mass = []
        for c in range(3):
            keys = mem.keys[c][mem.valid[c]]
            d = ((keys - x[i])**2).sum(1).sort().values[:2]      # n = 2 nearest of class c
            mass.append((1.0 / (d + 1e-3)).sum())
        ref[i] = torch.stack(mass) / sum(mass)
    torch.testing.assert_close(reader.scores(x, torch.zeros(5, 3)), ref)


def test_reader_clear_errors():
    with pytest.raises(ValueError, match='inference_read'):
        EpisodicMemoryReader(num_classes=2, dim=2, capacity=2, num_neighbors=1,
                             inference_read='knn')
    with pytest.raises(ValueError, match='unknown inference_weights'):
        EpisodicMemoryReader(num_classes=2, dim=2, capacity=2, num_neighbors=1,
                             inference_weights=dict(global_memory=1.0))
    reader = EpisodicMemoryReader(num_classes=2, dim=2, capacity=2, num_neighbors=1)
    with pytest.raises(ValueError, match=r"reader's `dim`"):
        reader.write(torch.randn(3, 5), torch.randn(3, 2), torch.tensor([0, 1, 0]))
