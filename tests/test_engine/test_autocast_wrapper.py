"""AutocastOptimWrapper: the bfloat16 autocast of --amp on CPU."""
import pytest
import torch

from lt_plugins.engine.optimizers import AutocastOptimWrapper


def test_autocast_optim_wrapper_runs_forward_in_bfloat16_and_steps_float32_weights():
    layer = torch.nn.Linear(4, 3)
    wrapper = AutocastOptimWrapper(optimizer=torch.optim.SGD(layer.parameters(), lr=0.1))
    before = layer.weight.detach().clone()
    with wrapper.optim_context(layer):
        out = layer(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16 and layer.weight.dtype == torch.float32
    wrapper.update_params(out.float().square().sum())
    assert not torch.equal(before, layer.weight.detach())
    with pytest.raises(ValueError, match='dtype'):
        AutocastOptimWrapper(dtype='int8', optimizer=torch.optim.SGD(layer.parameters(), lr=1))
