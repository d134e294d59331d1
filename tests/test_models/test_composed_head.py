"""ComposedClsHead: a plain classifier plus an MBJ memory term and/or an episodic memory reader;
each composition against the method head it generalises (MBJClsHead, IEMHead's global read)."""
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401  (registration)

COUNTS = [100, 40, 10, 3]
MEMORY = dict(type='RebalancedFIFOMemory', beta=1.5, class_counts=COUNTS)


def _samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


def _composed(**kw):
    cfg = dict(type='ComposedClsHead', num_classes=4, in_channels=6)
    cfg.update(kw)
    return MODELS.build(cfg)


@pytest.mark.parametrize('classifier,variant', [('linear', 'F'), ('cosine', 'F'),
                                                ('linear', 'FR+RJ')])
def test_linear_or_cosine_plus_memory_term_equals_mbj_cls_head(classifier, variant):
    torch.manual_seed(0)
    mbj = MODELS.build(dict(type='MBJClsHead', num_classes=4, in_channels=6, eta=15.0,
                            classifier=classifier, cosine_scale=16.0, variant=variant,
                            memory=MEMORY))
    cls = (dict(type='LinearClsHead') if classifier == 'linear' else
           dict(type='NormedLinearClsHead', scale=16.0, loss=dict(type='CrossEntropyLoss')))
    head = _composed(classifier=cls, memory_term=dict(memory=MEMORY, eta=15.0,
                                                      variant=variant))
    # same classifier weights under the composed head's names
    own = mbj.state_dict()
    if classifier == 'linear':
        head.classifier.fc.load_state_dict(mbj.fc.state_dict())
    else:
        head.classifier.weight.data.copy_(own['weight'])
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = torch.randn(12, 6, generator=gen)
        y = torch.randint(0, 4, (12, ), generator=gen)
        ref, got = mbj.loss((x, ), _samples(y)), head.loss((x, ), _samples(y))
        assert set(got) == {'loss', 'loss_memory'}
        torch.testing.assert_close(got['loss'], ref['loss'])
        torch.testing.assert_close(got['loss_memory'], ref['loss_memory'])
    for key, value in mbj.memory.state_dict().items():
        assert torch.equal(head.memory_term.memories[0].state_dict()[key], value), key


def test_memory_term_switch_reaches_the_part_through_the_model():
    head = _composed(memory_term=dict(memory=MEMORY, memory_enabled=False))
    for module in head.modules():  # what MBJMemorySwitchHook does
        if hasattr(module, 'set_memory_enabled'):
            module.set_memory_enabled(True)
    x, y = torch.randn(8, 6), torch.randint(0, 4, (8, ))
    assert 'loss_memory' in head.loss((x, ), _samples(y))
    head.memory_term.set_memory_enabled(False)
    assert set(head.loss((x, ), _samples(y))) == {'loss'}


@pytest.mark.parametrize('reading', ['class', 'keys'])
def test_classifier_plus_reader_predicts_the_weighted_mean(reading):
    torch.manual_seed(2)
    head = _composed(classifier=dict(type='LWSHead'),
                     memory_reader=dict(capacity=6, num_neighbors=2, inference_read=reading,
                                        inference_weights=dict(classifier=0.7, memory=0.3)))
    x, y = torch.randn(10, 6), torch.tensor([0, 1, 2, 3, 0, 1, 2, 0, 0, 1])
    losses = head.loss((x, ), _samples(y))
    assert set(losses) == {'loss'}
    mem = head.memory_reader.memory
    assert mem.num_valid().tolist() == [4, 3, 2, 1]  # every training sample written, at once
    logits = head.classifier((x, ))
    torch.testing.assert_close(mem.values[0][mem.valid[0]], logits.softmax(1)[y == 0, 0])
    q = torch.randn(5, 6)
    preds = head.predict((q, ))
    ref = (0.7 * head.classifier((q, )).softmax(1)
           + 0.3 * mem.read_all(q, reading)) / 1.0
    scores = torch.stack([p.pred_score for p in preds])
    torch.testing.assert_close(scores, ref)
    # the argmax of the head's own scores: `ref` agrees with them only to round-off
    assert [int(p.pred_label) for p in preds] == scores.argmax(1).tolist()


def test_plain_classifier_alone_predicts_like_the_classifier():
    torch.manual_seed(3)
    head = _composed(classifier=dict(type='TauNormHead', tau=1.0))
    q = torch.randn(4, 6)
    got = torch.stack([p.pred_score for p in head.predict((q, ))])
    torch.testing.assert_close(got, head.classifier((q, )).softmax(1))


def test_plain_head_checkpoint_loads_into_the_classifier():
    torch.manual_seed(4)
    plain = MODELS.build(dict(type='LinearClsHead', num_classes=4, in_channels=6))
    head = _composed(classifier=dict(type='LWSHead'),
                     memory_reader=dict(capacity=4, num_neighbors=2))
    missing, unexpected = head.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and not any(k.startswith('classifier.fc') for k in missing)
    assert torch.equal(head.classifier.fc.weight, plain.fc.weight)
    assert sorted(k for k in head.state_dict() if k.startswith('classifier')) == [
        'classifier.fc.bias', 'classifier.fc.weight', 'classifier.scales']


def test_composed_clear_errors():
    with pytest.raises(ValueError, match='MBJClsHead'):
        _composed(memory_term=dict(variant='W'))
    with pytest.raises(ValueError, match='memory_reader.dim=5'):
        _composed(memory_reader=dict(dim=5, capacity=2, num_neighbors=1))
    with pytest.raises(TypeError, match='classifier'):
        _composed(classifier='linear')
    head = _composed(memory_term=dict(memory=MEMORY))
    with pytest.raises(ValueError, match='hard labels'):
        head.loss((torch.randn(2, 6), ),
                  [DataSample().set_gt_score(torch.full((4, ), 0.25)) for _ in range(2)])
