"""tools/extract_features.py: pooled vectors of an image model, paired into two-label
samples, read back by FeatureVectorDataset."""
import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS

from lt_plugins.datasets import FeatureVectorDataset
from tests.test_tools import load_tool

CONFIG = 'configs/baselines/ce_resnet32-cifar_1xb32_digits-lt.py'


def test_make_pairs_two_labels_and_mean():
    tool = load_tool('tools/extract_features.py')
    feats = np.arange(8, dtype=np.float32).reshape(4, 2)
    labels = np.array([0, 0, 1, 2])
    out, label_lists = tool.make_pairs(feats, labels, seed=0)
    rng = np.random.RandomState(0)
    for i in range(4):                       # replay the documented draw
        others = np.flatnonzero(labels != labels[i])
        j = others[rng.randint(others.size)]
        np.testing.assert_allclose(out[i], (feats[i] + feats[j]) / 2)
        assert label_lists[i] == sorted({int(labels[i]), int(labels[j])})
        assert len(label_lists[i]) == 2


def test_extract_digits_test_split(tmp_path):
    tool = load_tool('tools/extract_features.py')
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmpretrain')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    ckpt = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict()), ckpt)
    out = tmp_path / 'test.npz'
    tool.main([CONFIG, str(ckpt), '--split', 'test', '--out', str(out)])
    ds = FeatureVectorDataset(str(out), num_classes=10, feature_dim=64)
    assert len(ds) == 200 and ds.class_counts.tolist() == [20] * 10
    # the stored vectors are the model's pooled features (GAP of the last map), any batching
    feats, labels = tool.extract(cfg, str(ckpt), 'test', batch_size=64)
    np.testing.assert_allclose(np.load(out)['features'], feats, rtol=1e-4, atol=1e-5)
    model.eval()
    from lt_plugins.datasets import DigitsLT
    img = DigitsLT(split='test').get_data_info(0)['img']
    x = (torch.from_numpy(img).permute(2, 0, 1).float()[None] - 78.0) / 96.0
    with torch.no_grad():
        ref = model.extract_feat(x)[-1]
    np.testing.assert_allclose(feats[0], ref[0].numpy(), rtol=1e-4, atol=1e-5)
    assert labels.tolist() == DigitsLT(split='test').get_gt_labels().tolist()
