"""tools/analysis/plot_per_class_accuracy.py writes a PNG from ShotAccuracy's per-class file."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

from lt_plugins.evaluation.metrics import ShotAccuracy
from tests.test_tools import load_tool as load_shared_tool

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TOOL = osp.join(ROOT, 'tools', 'analysis', 'plot_per_class_accuracy.py')


def load_tool():
    return load_shared_tool('tools/analysis/plot_per_class_accuracy.py')


def write_per_class(path, counts):
    gen = torch.Generator().manual_seed(0)
    num_classes = len(counts)
    metric = ShotAccuracy(class_counts=counts, per_class_out=str(path))
    metric.dataset_meta = dict(classes=tuple(f'c{i}' for i in range(num_classes)))
    gts = torch.arange(num_classes).repeat(10)
    scores = torch.rand(len(gts), num_classes, generator=gen)
    samples = [dict(pred_score=s, gt_label=g.reshape(1)) for s, g in zip(scores, gts)]
    metric.process(None, samples)
    return metric.evaluate(len(samples))


@pytest.mark.parametrize('ext', ['json', 'csv'])
def test_writes_png(tmp_path, ext, capsys):
    counts = [2000, 700, 150, 90, 40, 21, 12, 6, 3, 0]  # last class: no training image
    src = tmp_path / f'per_class.{ext}'
    metrics = write_per_class(src, counts)
    out = tmp_path / 'plots' / 'acc.png'
    tool = load_tool()
    assert tool.main([str(src), '--out', str(out), '--title', 'test']) == str(out)
    data = out.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000
    printed = capsys.readouterr().out
    assert 'saved' in printed and '1 classes without test samples' in printed
    # the plotted split means are the metric's split accuracies (the empty class is
    # few-shot for the metric but cannot be placed on a log axis)
    rows, _ = tool.load_per_class(str(src))
    summary = tool.plot(rows[:-1], str(tmp_path / 'b.png'), 100, 20)
    assert summary['many'][1] == pytest.approx(metrics['shot/many'])
    assert summary['medium'][1] == pytest.approx(metrics['shot/medium'])


def test_help_and_missing_file(tmp_path):
    proc = subprocess.run([sys.executable, TOOL, '--help'], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and '--out' in proc.stdout and 'per_class_out' in proc.stdout
    with pytest.raises(FileNotFoundError, match='per_class_out'):
        load_tool().main([str(tmp_path / 'nope.json')])
