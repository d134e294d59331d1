"""tools/analysis/afa_recompute_bn.py: recomputed statistics equal a brute-force pass."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from tests.test_tools import load_tool


class _Tiny(nn.Module):
    """stem (not recomputed) -> neck -> backbone.tail (two sequential BN layers and a
    BN on a side branch, declared before the main path's BNs)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
        self.backbone = nn.Module()
        self.backbone.tail = nn.ModuleDict(dict(
            side_bn=nn.BatchNorm2d(5), side=nn.Conv2d(4, 5, 1),
            conv1=nn.Conv2d(4, 5, 3, padding=1), bn1=nn.BatchNorm2d(5),
            conv2=nn.Conv2d(5, 5, 3, padding=1), bn2=nn.BatchNorm2d(5)))

    def forward(self, x):
        t = self.backbone.tail
        x = F.relu(self.stem(x))
        y = t['bn2'](t['conv2'](F.relu(t['bn1'](t['conv1'](x)))))
        return y + t['side_bn'](t['side'](x))


def _trained_tiny():
    torch.manual_seed(0)
    model = _Tiny()
    for m in model.modules():  # statistics far from the data ("half generated")
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-3, 3)
            m.running_var.uniform_(2, 5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model


def _stats(x):
    return x.double().mean((0, 2, 3)), x.double().var((0, 2, 3), unbiased=True)


def test_statistics_equal_brute_force_and_checkpoint_is_rewritten(tmp_path):
    tool = load_tool('tools/analysis/afa_recompute_bn.py')
    model = _trained_tiny()
    stem_before = model.stem[1].running_mean.clone()
    data = torch.randn(10, 3, 6, 6) * 2 + 0.5
    batches = [data[0:3], data[3:6], data[6:9], data[9:10]]  # uneven last batch
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), ckpt)

    model.eval()  # (a training-mode forward would move the statistics)
    order = tool.bn_layers_in_call_order(model.backbone.tail, model, batches[0])
    assert order == ['bn1', 'bn2', 'side_bn']
    tool.recompute_bn_stats(model, model.backbone.tail, model, batches)

    # brute force: the whole data at once, in eval mode, each layer after the earlier ones
    ref = _trained_tiny()
    ref.eval()
    t = ref.backbone.tail
    with torch.no_grad():
        x = F.relu(ref.stem(data))
        for bn, inp in ((t['bn1'], lambda: t['conv1'](x)),
                        (t['bn2'], lambda: t['conv2'](F.relu(t['bn1'](t['conv1'](x))))),
                        (t['side_bn'], lambda: t['side'](x))):
            mean, var = _stats(inp())
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
    for name in ('bn1', 'bn2', 'side_bn'):
        got, want = model.backbone.tail[name], t[name]
        torch.testing.assert_close(got.running_mean, want.running_mean)
        torch.testing.assert_close(got.running_var, want.running_var)
    torch.testing.assert_close(model.stem[1].running_mean, stem_before)  # outside: untouched
    # the old statistics were far off, so the check above can fail
    old = _trained_tiny().backbone.tail['bn2'].running_mean
    assert (old - t['bn2'].running_mean).abs().max() > 0.1
    # eval-mode outputs now equal the brute-force model's
    with torch.no_grad():
        torch.testing.assert_close(model(data), ref(data))

    out = tmp_path / 'realbn.pth'
    replaced = tool.rewrite_checkpoint(str(ckpt), str(out), model, 'backbone.tail')
    assert len(replaced) == 6
    new = torch.load(out, weights_only=False)
    assert new['meta'] == dict(epoch=1)
    for name in ('bn1', 'bn2', 'side_bn'):
        torch.testing.assert_close(new['state_dict'][f'backbone.tail.{name}.running_var'],
                                   t[name].running_var)
    torch.testing.assert_close(new['state_dict']['stem.1.running_mean'], stem_before)
    torch.testing.assert_close(new['state_dict']['backbone.tail.conv1.weight'],
                               model.backbone.tail['conv1'].weight)


def test_errors():
    tool = load_tool('tools/analysis/afa_recompute_bn.py')
    model = _trained_tiny()
    with pytest.raises(ValueError, match='no BatchNorm'):
        tool.recompute_bn_stats(model, model.backbone.tail['conv1'], model,
                                [torch.randn(2, 3, 6, 6)])
