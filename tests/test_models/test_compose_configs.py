"""configs/compose/: each composed model builds from its config, trains one step on random
CIFAR-sized images and predicts through its parts."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401  (registration)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CFG = osp.join(REPO, 'configs', 'compose', '{}_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py')


@pytest.mark.parametrize('name,parts', [('afa-mbj', {'memory_term'}),
                                        ('crt-iem-read', {'memory_reader'})])
def test_compose_config_builds_trains_and_predicts(name, parts):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = Config.fromfile(CFG.format(name))
    model = MODELS.build(cfg.model)
    head = model.head
    assert type(head).__name__ == 'ComposedClsHead' and head.in_channels == 64
    assert {p for p in ('memory_term', 'memory_reader') if getattr(head, p) is not None} == parts
    for module in model.modules():  # ClassCountsHook / MBJMemorySwitchHook, by hand
        if hasattr(module, 'set_class_counts'):
            module.set_class_counts(torch.tensor([500, 300, 180, 110, 60, 36, 20, 12, 7, 5]))
        if hasattr(module, 'set_memory_enabled'):
            module.set_memory_enabled(True)
    labels = [0, 1, 2, 9]
    samples = [DataSample().set_gt_label(y) for y in labels]
    model.train()
    losses = model.loss(torch.randn(4, 3, 32, 32), samples)
    if name == 'afa-mbj':
        assert {'loss_ori', 'loss_all', 'loss_memory'} <= set(losses)
        assert head.memory_term.memories[0].step.item() == 1
    else:
        assert set(losses) == {'loss'}
        assert int(head.memory_reader.memory.num_valid().sum()) == 4
        # cRT: only the classifier trains; the reader's memory is not a trained parameter
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable == {'head.classifier.fc.weight', 'head.classifier.fc.bias'}
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    model.eval()
    images = torch.randn(2, 3, 32, 32)
    scores = torch.stack([p.pred_score for p in model.predict(images)])
    with torch.no_grad():
        x = model.extract_feat(images, stage='pre_logits')
        ref = head.classify(x).softmax(1)
        if name == 'crt-iem-read':  # Eq. 1 reads of every class, averaged with the softmax
            ref = 0.5 * ref + 0.5 * head.memory_reader.memory.read_all(x, 'class')
    torch.testing.assert_close(scores, ref)
