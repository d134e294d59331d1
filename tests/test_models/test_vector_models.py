"""Vector backbones (VectorMLP, ContextGatedMLP) and IEM's multi-label vector mode."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import lt_plugins  # noqa: F401
from lt_plugins.datasets import FeatureVectorDataset, save_feature_npz
from lt_plugins.models.backbones import ContextGatedMLP, VectorMLP
from lt_plugins.models.heads import IEMVectorHead

C, D = 4, 6
LABELS = [[0], [1, 2], [2], [0, 3], [3], [1]]


def _samples(labels=LABELS):
    return [DataSample().set_gt_label(list(x)) for x in labels]


def test_vector_backbones_shapes_values_and_errors():
    torch.manual_seed(0)
    x = torch.randn(5, D)
    mlp = VectorMLP(D, hidden_channels=(8, 3)).eval()
    assert mlp(x)[0].shape == (5, 3) and mlp.out_channels == 3
    torch.testing.assert_close(VectorMLP(D, hidden_channels=())(x)[0], x)   # logistic baseline
    cg = ContextGatedMLP(D, hidden_channels=7).eval()
    h = cg.hidden(x)
    torch.testing.assert_close(cg(x)[0], h * torch.sigmoid(cg.gate(h)))
    for model in (mlp, cg):
        with pytest.raises(ValueError, match=r'\(N, 6\).*backbone.in_channels'):
            model(torch.randn(5, D + 1))


def test_image_classifier_with_identity_preprocessor(tmp_path):
    """MMPretrain's ImageClassifier + ClsDataPreprocessor (no mean/std) run vector batches."""
    rng = np.random.RandomState(0)
    feats = rng.randn(6, D).astype(np.float32)
    save_feature_npz(str(tmp_path / 'v.npz'), feats, LABELS)
    ds = FeatureVectorDataset(str(tmp_path / 'v.npz'), num_classes=C, feature_dim=D,
                              pipeline=[dict(type='PackInputs')])
    model = MODELS.build(dict(
        type='ImageClassifier', data_preprocessor=dict(type='ClsDataPreprocessor'),
        backbone=dict(type='VectorMLP', in_channels=D, hidden_channels=(8, )),
        head=dict(type='IEMVectorHead', num_classes=C, in_channels=8, global_capacity=8,
                  num_neighbors=2, warmup_iters=0)))
    batch = dict(inputs=[ds[i]['inputs'] for i in range(6)],
                 data_samples=[ds[i]['data_samples'] for i in range(6)])
    data = model.data_preprocessor(batch, True)
    torch.testing.assert_close(data['inputs'], torch.from_numpy(feats))   # identity
    losses = model(**data, mode='loss')
    assert set(losses) == {'loss', 'loss_global_memory'}
    sum(losses.values()).backward()
    model.head.flush_memories()
    assert model.head.global_memory.num_valid().tolist() == [2, 2, 2, 2]   # per-label writes
    model.eval()
    with torch.no_grad():
        preds = model(**model.data_preprocessor(batch, False), mode='predict')
    assert preds[0].pred_score.shape == (C, )


def test_iem_vector_warmup_writes_every_positive_class():
    torch.manual_seed(0)
    head = IEMVectorHead(C, D, global_capacity=8, num_neighbors=2, warmup_iters=1)
    x = torch.randn(6, D)
    losses = head.loss((x, ), _samples())
    logits = head.fc(x).detach()
    target = torch.zeros(6, C)
    for i, labels in enumerate(LABELS):
        target[i, labels] = 1
    # BCE summed over classes, averaged over samples (MMPretrain's MultiLabelClsHead)
    ref = F.binary_cross_entropy_with_logits(logits, target, reduction='sum') / 6
    torch.testing.assert_close(losses['loss'], ref)
    assert float(losses['loss_global_memory'].detach()) == 0.0
    head.flush_memories()
    mem = head.global_memory
    assert mem.num_valid().tolist() == [2, 2, 2, 2]
    prob = torch.sigmoid(logits)
    for c in range(C):                      # keys = the samples labelled c, values = sigmoid
        members = [i for i, labels in enumerate(LABELS) if c in labels]
        keys = mem.keys[c][mem.valid[c]].detach()
        vals = mem.values[c][mem.valid[c]].detach()
        torch.testing.assert_close(keys, x[members])
        torch.testing.assert_close(vals, prob[members, c])


def test_iem_vector_memory_loss_and_inference_against_manual_reads():
    torch.manual_seed(1)
    head = IEMVectorHead(C, D, global_capacity=8, num_neighbors=2, warmup_iters=1)
    x = torch.randn(6, D)
    head.loss((x, ), _samples())                # warm-up: writes only
    head.flush_memories()
    x2 = x + 0.1 * torch.randn(6, D)
    ref_head = copy.deepcopy(head).eval()
    losses = head.loss((x2, ), _samples())
    logits = ref_head.fc(x2).detach()
    pos, neg = [], []
    for i, labels in enumerate(LABELS):
        for c in labels:
            pos.append(ref_head.global_memory.read(x2[i:i + 1], torch.tensor([c])))
        masked = logits[i].clone()
        masked[labels] = float('-inf')
        neg.append(ref_head.global_memory.read(x2[i:i + 1], masked.argmax().view(1)))
    pos, neg = torch.cat(pos), torch.cat(neg)
    ref = F.mse_loss(pos, torch.ones_like(pos)) + F.mse_loss(neg, torch.zeros_like(neg))
    torch.testing.assert_close(losses['loss_global_memory'], ref)
    # inference: (0.5 sigmoid + 0.5 read) / 1; pred_label = scores >= thr
    head.flush_memories()
    head.eval()
    preds = head.predict((x2, ))
    scores = torch.stack([p.pred_score for p in preds])
    expected = 0.5 * torch.sigmoid(head.fc(x2)) + 0.5 * head.global_memory.read_all(x2)
    torch.testing.assert_close(scores, expected.detach())
    for p, s in zip(preds, scores):
        assert p.pred_label.tolist() == torch.nonzero(s >= 0.5).view(-1).tolist()


def test_iem_vector_errors():
    with pytest.raises(ValueError, match='use_local_memory'):
        IEMVectorHead(C, D, use_local_memory=True)
    with pytest.raises(ValueError, match='classifier_weight'):
        IEMVectorHead(C, D, classifier_weight=1.5)
    head = IEMVectorHead(C, D, global_capacity=8, num_neighbors=2)
    with pytest.raises(ValueError, match='in_channels=6'):
        head.loss((torch.randn(2, D + 1), ), _samples([[0], [1]]))


# uneven positive pairs per rank: rank 0 holds 4 (sample, class) pairs, rank 1 holds 3
DIST_LABELS = [[0], [1, 2], [2, 3], [3], [1], [0, 2]]


def _dist_writes(rank, world_size):
    torch.manual_seed(0)
    head = IEMVectorHead(C, D, global_capacity=8, num_neighbors=2, warmup_iters=10)
    gen = torch.Generator().manual_seed(1)
    for _ in range(2):
        x = torch.randn(6, D, generator=gen)
        share = 6 // world_size
        part = slice(rank * share, (rank + 1) * share)
        head.loss((x[part], ), _samples(DIST_LABELS[part]))
        head.flush_memories()
    return {k: v.clone() for k, v in head.global_memory.state_dict().items()}


@pytest.mark.slow
def test_two_process_multilabel_writes_match_single_process():
    from tests.dist_utils import run_distributed
    results = run_distributed(_dist_writes)
    single = _dist_writes(0, 1)
    for key in single:
        assert torch.equal(results[0][key], results[1][key]), key
        assert torch.equal(results[0][key], single[key]), key
    assert single['valid'].sum() == 2 * 9         # every positive pair of both steps
