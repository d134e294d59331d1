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


COUNTS = [500, 300, 180, 110, 60, 36, 20, 12, 7, 5]  # threshold 100: heads 0-3
# (stage-2 config, stage-3 config) of each "<stage 1> then STG" chain (any stage 1 of this
# backbone: configs/stg's stage 2, then the composed stage 3)
STG_CHAINS = [
    ('../stg/stg-stage2', 'crt-stg-stage3'),
    ('mbj-stg-stage2', 'mbj-stg-stage3'),
    ('ldam-drw-stg-stage2', 'ldam-drw-stg-stage3'),
    ('afa-stg-stage2', 'afa-stg-stage3'),
]


def _build(name):
    cfg = Config.fromfile(CFG.format(name))
    model = MODELS.build(cfg.model)
    for module in model.modules():  # ClassCountsHook, by hand
        if hasattr(module, 'set_class_counts'):
            module.set_class_counts(torch.tensor(COUNTS))
    model.require_pretrained = False  # FeatureCacheClassifier: no stage-1 checkpoint here
    return cfg, model


@pytest.mark.parametrize('stage2,stage3', STG_CHAINS)
def test_stg_chain_configs_carry_the_generator_into_a_composed_stage3(stage2, stage3):
    """Stage 2 (STGGeneratorHead on the stage-1 model) trains one step; its state loads into
    the composed stage 3 (ComposedClsHead + STGFeatureGenerator) with the generator carried
    and the classifier re-initialised; stage 3 trains only the classifier on augmented tail
    features and predicts with the classifier alone."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg2, model2 = _build(stage2)
    cfg3, model3 = _build(stage3)
    assert type(model2.head).__name__ == 'STGGeneratorHead'
    assert cfg3.model.head.generator.head_threshold == cfg2.model.head.head_threshold == 100
    assert cfg3.train_dataloader.sampler.type == 'ClassBalancedSampler'
    assert cfg2.train_dataloader.sampler.type == 'DefaultSampler'
    model2.train()
    labels = [0, 0, 1, 1, 2, 2, 3, 3, 8, 9]  # head pairs and two tail samples
    samples = [DataSample(metainfo=dict(sample_idx=i)).set_gt_label(y)
               for i, y in enumerate(labels)]
    losses = model2.loss(torch.randn(len(labels), 3, 32, 32), samples)
    assert set(losses) >= {'loss_mu', 'loss_sigma'}
    fresh = model3.head.classifier.fc.weight.clone()
    res = model3.load_state_dict(model2.state_dict(), strict=False)
    head = model3.head
    for key, value in model2.head.generator.state_dict().items():
        torch.testing.assert_close(head.generator.generator_net.state_dict()[key], value,
                                   rtol=0, atol=0)
    assert int(head.generator.generator_net.trained_iters) == 1
    torch.testing.assert_close(head.classifier.fc.weight, fresh, rtol=0, atol=0)  # cRT
    assert not [k for k in res.unexpected_keys if k.startswith('head.')]
    trainable = {n for n, p in model3.named_parameters() if p.requires_grad}
    assert trainable == {'head.classifier.fc.weight', 'head.classifier.fc.bias'}
    model3.train()
    tail = [DataSample().set_gt_label(y) for y in (8, 9, 1)]
    images = torch.randn(3, 3, 32, 32)
    loss = model3.loss(images, tail)['loss']
    loss.backward()
    assert int(head.generator.aug_step) == 1 and head.classifier.fc.weight.grad is not None
    # the tail features were augmented (a plain cRT loss on the real features differs)
    with torch.no_grad():
        x = model3.extract_feat(images, stage='pre_logits')
        plain = head.classifier.loss((x, ), tail)['loss']
    assert not torch.allclose(plain, loss.detach())
    model3.eval()
    scores = torch.stack([p.pred_score for p in model3.predict(images)])
    torch.testing.assert_close(scores, head.classify(x).softmax(1))


def test_ldam_drw_iem_read_keeps_the_ldam_classifier_and_trains_nothing():
    """The LDAM-DRW model loads whole (cosine classifier into ``head.classifier``); lr 0 and a
    frozen backbone leave it unchanged; weights 1 / 0 predict exactly as LDAM-DRW, 0.5 / 0.5 is
    the softmax averaged with the memory read."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    ldam_cfg = Config.fromfile(osp.join(
        REPO, 'configs', 'baselines', 'ldam-drw_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py'))
    ldam = MODELS.build(ldam_cfg.model)
    cfg = Config.fromfile(CFG.format('ldam-drw-iem-read'))
    assert cfg.optim_wrapper.optimizer.lr == 0.0 and not cfg.model.reinit_head
    model = MODELS.build(cfg.model)
    counts = torch.tensor(COUNTS)
    for module in (*ldam.modules(), *model.modules()):
        if hasattr(module, 'set_class_counts'):
            module.set_class_counts(counts)
    with torch.no_grad():   # a "trained" LDAM-DRW model: weights off their init
        for p in ldam.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ldam.eval()
    result = model.load_state_dict(ldam.state_dict(), strict=False)
    assert not [k for k in result.missing_keys if not k.startswith('head.memory_reader')]
    torch.testing.assert_close(model.head.classifier.weight, ldam.head.weight)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {'head.classifier.weight'}
    model.train()
    samples = [DataSample().set_gt_label(y) for y in (0, 5, 9)]
    model.loss(torch.randn(3, 3, 32, 32), samples)
    assert int(model.head.memory_reader.memory.num_valid().sum()) == 3
    model.eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ldam_scores = torch.stack([p.pred_score for p in ldam.predict(images)])
        x = model.extract_feat(images, stage='pre_logits')
        read = model.head.memory_reader.memory.read_all(x, 'class')
    mixed = torch.stack([p.pred_score for p in model.predict(images)])
    torch.testing.assert_close(mixed, 0.5 * ldam_scores + 0.5 * read)
    model.head.memory_reader.inference_weights = dict(classifier=1.0, memory=0.0)
    only = torch.stack([p.pred_score for p in model.predict(images)])
    torch.testing.assert_close(only, ldam_scores)


def test_ride_gaussian_config_fine_tunes_only_the_expert_classifiers_with_tail_noise():
    """configs/compose/ride-gaussian: the RIDE model kept whole, backbone frozen, the experts'
    classifiers the only trainable weights, Gaussian noise (std 1.0) on the tail half."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = Config.fromfile(CFG.format('ride-gaussian'))
    assert not cfg.model.reinit_head and cfg.model.head.mbj is None
    model = MODELS.build(cfg.model)
    gen = model.head.generator
    assert (gen.augment, gen.noise_std, gen.head_threshold) == ('gaussian', 1.0, 'median')
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {'head.weight'}
    for module in model.modules():
        if hasattr(module, 'set_class_counts'):
            module.set_class_counts(torch.tensor([500, 300, 180, 110, 60, 36, 20, 12, 7, 5]))
    assert gen.head_mask().tolist() == [True] * 5 + [False] * 5
    model.train()
    losses = model.loss(torch.randn(4, 3, 32, 32),
                        [DataSample().set_gt_label(y) for y in (0, 1, 7, 9)])
    assert {'loss_cls', 'loss_diversity'} <= set(losses) and int(gen.aug_step) == 4
    losses['loss_cls'].backward()
    assert model.head.weight.grad is not None and model.head.weight.grad.abs().sum() > 0
