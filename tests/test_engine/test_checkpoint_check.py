"""Checkpoints that do not fit: unreadable files name themselves, another model's checkpoint
is refused by tools/test.py unless --allow-key-mismatch."""
import os.path as osp
import pickle
import sys

import pytest
import torch
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint
from mmpretrain.registry import MODELS

import lt_plugins  # noqa: F401  (installs the named read errors)
from lt_plugins.engine.checkpoint_check import check_checkpoint_keys
from tests.test_tools import load_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CE_DIGITS = osp.join(REPO, 'configs/baselines/ce_resnet32-cifar_1xb32_digits-lt.py')


def _model(num_classes=10, neck=None, in_chans=1):
    init_default_scope('mmpretrain')
    return MODELS.build(dict(
        type='AutoChannelClassifier',
        backbone=dict(type='TIMMBackbone', model_name='resnet32_cifar', in_channels=in_chans),
        neck=neck or dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=num_classes, in_channels='auto')))


def _save(model, path):
    torch.save(dict(state_dict=model.state_dict(),  # DigitsLT's training counts
                    meta=dict(lt_class_counts=[150, 104, 73, 51, 35, 25, 17, 12, 8, 6])),
               str(path))
    return str(path)


def test_truncated_checkpoint_names_the_file(tmp_path):
    path = _save(_model(), tmp_path / 'epoch_3.pth')
    data = open(path, 'rb').read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])
    for load in (CheckpointLoader.load_checkpoint, _load_checkpoint):
        with pytest.raises(RuntimeError, match=rf"cannot read checkpoint '.*epoch_3\.pth' "
                                               rf'\({len(data) // 2} bytes on disk\).*cut short'):
            load(path, map_location='cpu')
    with pytest.raises(FileNotFoundError, match='missing.pth'):  # mmengine's own, unchanged
        CheckpointLoader.load_checkpoint(str(tmp_path / 'missing.pth'))
    legacy = str(tmp_path / 'legacy.pth')  # the pre-zip format, cut short
    torch.save(dict(state_dict=dict(w=torch.ones(100))), legacy,
               _use_new_zipfile_serialization=False)
    data = open(legacy, 'rb').read()
    with open(legacy, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises((EOFError, RuntimeError, pickle.UnpicklingError),
                       match=r"cannot read checkpoint '.*legacy\.pth'"):
        CheckpointLoader.load_checkpoint(legacy, map_location='cpu')


def test_key_check_refuses_another_model_and_allows_with_the_flag(tmp_path):
    torch.manual_seed(0)
    model = _model()
    same = _model()
    found = check_checkpoint_keys(model, _save(same, tmp_path / 'same.pth'))
    assert not any(found.values())
    torch.testing.assert_close(model.head.fc.weight, same.head.fc.weight)  # loaded

    other = _model(num_classes=5, neck=dict(type='RSANeck', in_channels='auto', h_max=2,
                                            w_max=2))
    path = _save(other, tmp_path / 'other.pth')
    with pytest.raises(ValueError, match=r"'.*other\.pth' does not fit.*unexpected keys "
                                         r'\(neck\..*tensors of another shape \(head\.fc\.'
                                         r'weight \(5, 64\) vs \(10, 64\).*'
                                         '--allow-key-mismatch'):
        check_checkpoint_keys(model, path)
    found = check_checkpoint_keys(model, path, allow_mismatch=True)
    assert found['missing'] == [] and found['unexpected'][0].startswith('neck.')
    assert sorted(k.split()[0] for k in found['shape']) == ['head.fc.bias', 'head.fc.weight']


def test_tools_test_refuses_a_checkpoint_of_another_model(tmp_path, monkeypatch, capsys):
    tool = load_tool('tools/test.py')
    path = _save(_model(neck=dict(type='RSANeck', in_channels='auto', h_max=2, w_max=2)),
                 tmp_path / 'iem_like.pth')
    argv = ['tools/test.py', CE_DIGITS, path, '--work-dir', str(tmp_path / 'work')]
    monkeypatch.setattr(sys, 'argv', argv)
    with pytest.raises(ValueError, match='unexpected keys.*--allow-key-mismatch'):
        tool.main()
    monkeypatch.setattr(sys, 'argv', argv + ['--allow-key-mismatch'])
    tool.main()  # evaluates anyway, with a warning
    assert '| shot |' in capsys.readouterr().out
