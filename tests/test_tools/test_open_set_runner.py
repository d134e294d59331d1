"""Open-set path through mmengine's Runner: DigitsLT open split, IEM with the memory
confidence; the threshold chosen on val is written, read back by the test evaluator."""
import json
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.runner import Runner

import lt_plugins  # noqa: F401

CONFIG = 'configs/iem/iem_resnet32-cifar_1xb32_digits-lt-open8.py'


@pytest.mark.slow
def test_digits_open_split_train_val_threshold_test(tmp_path):
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.default_hooks.logger.interval = 50
    cfg.model.head.warmup_iters = 5
    runner = Runner.from_cfg(cfg)
    runner.train()
    record = json.loads(open(osp.join(str(tmp_path), 'open_threshold.json')).read())
    assert record['confidence_key'] == 'open_confidence' and record['num_unknown'] == 10
    metrics = runner.test()
    assert metrics['open/threshold'] == pytest.approx(record['threshold'])
    assert 0.0 <= metrics['open/f_measure'] <= 1.0
    for key in ('top1', 'many', 'medium', 'few', 'open_top1', 'precision', 'recall',
                'f_measure_detection'):
        assert f'open/{key}' in metrics
    assert metrics['open/open_top1'] <= metrics['open/top1']
