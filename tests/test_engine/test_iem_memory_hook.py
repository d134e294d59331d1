"""HybridSGDAdam equals torch SGD / Adam per group; IEMMemoryHook resets overwritten slots."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from mmengine.optim import OptimWrapper

from lt_plugins.engine.hooks.iem_memory_hook import IEMMemoryHook, reset_optimizer_slots
from lt_plugins.engine.optimizers import HybridSGDAdam
from lt_plugins.memory.episodic import EpisodicMemory


def _params(seed):
    gen = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(4, 3, generator=gen)) for _ in range(2)]


def test_hybrid_matches_torch_sgd_and_adam_per_group():
    sgd_p, adam_p = _params(0), _params(1)
    ref_sgd_p = [nn.Parameter(p.detach().clone()) for p in sgd_p]
    ref_adam_p = [nn.Parameter(p.detach().clone()) for p in adam_p]
    hybrid = HybridSGDAdam([dict(params=sgd_p, nesterov=True),
                            dict(params=adam_p, adam=True, lr=1e-2, weight_decay=0.0)],
                           lr=0.1, momentum=0.9, weight_decay=1e-3)
    ref_sgd = torch.optim.SGD(ref_sgd_p, lr=0.1, momentum=0.9, weight_decay=1e-3,
                              nesterov=True)
    ref_adam = torch.optim.Adam(ref_adam_p, lr=1e-2)
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        grads = [torch.randn(4, 3, generator=gen) for _ in range(4)]
        for p, g in zip(sgd_p + adam_p + ref_sgd_p + ref_adam_p, grads * 2):
            p.grad = g.clone()
        hybrid.step()
        ref_sgd.step()
        ref_adam.step()
    for got, want in zip(sgd_p + adam_p, ref_sgd_p + ref_adam_p):
        torch.testing.assert_close(got, want)
    state = hybrid.state_dict()
    assert set(state['state'][2]) == {'step', 'exp_avg', 'exp_avg_sq'}
    assert set(state['state'][0]) == {'momentum_buffer'}


def test_reset_optimizer_slots_and_hook_flush():
    mem = EpisodicMemory(2, 3, capacity=2, num_neighbors=2)
    optimizer = HybridSGDAdam([dict(params=list(mem.parameters()), adam=True)], lr=1e-3)
    mem.write(torch.randn(4, 3), torch.rand(4), torch.tensor([0, 0, 1, 1]))
    mem.flush()
    mem.pop_overwritten()
    mem.read(torch.randn(2, 3), torch.tensor([0, 1])).sum().backward()
    optimizer.step()
    exp_avg_before = optimizer.state[mem.keys]['exp_avg'].clone()
    assert (exp_avg_before.abs().sum(-1) > 0).all()
    mem.write(torch.full((1, 3), 5.0), torch.ones(1), torch.tensor([1]))  # class 1 is full
    mem.flush()
    mask = mem.pop_overwritten()
    assert mask.tolist() == [[False, False], [True, False]]     # oldest, lowest index
    assert reset_optimizer_slots(optimizer, mem.keys, mask) == 2
    assert reset_optimizer_slots(optimizer, mem.values, mask) == 2
    exp_avg = optimizer.state[mem.keys]['exp_avg']
    assert exp_avg[1, 0].abs().sum() == 0
    torch.testing.assert_close(exp_avg[~mask], exp_avg_before[~mask])
    assert optimizer.state[mem.values]['exp_avg_sq'][1, 0] == 0

    # the hook flushes IEMHead memories and resets the optimizer state of overwritten slots
    from lt_plugins.models.heads.iem_head import IEMHead
    head = IEMHead(2, 3, use_local_memory=False, global_capacity=2, num_neighbors=2,
                   warmup_iters=0)
    model = nn.ModuleDict(dict(head=head))
    optimizer = HybridSGDAdam([dict(params=list(head.global_memory.parameters()), adam=True),
                               dict(params=list(head.fc.parameters()))], lr=1e-3)
    runner = SimpleNamespace(model=model, optim_wrapper=OptimWrapper(optimizer))
    from mmpretrain.structures import DataSample
    samples = [DataSample().set_gt_label(i) for i in (0, 1)]
    hook = IEMMemoryHook()
    for step in range(4):
        losses = head.loss((torch.randn(2, 3), ), samples)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        state_before = optimizer.state[head.global_memory.keys]['exp_avg'].clone()
        keys_before = head.global_memory.keys.detach().clone()
        hook.after_train_iter(runner, step)
        written = (head.global_memory.keys.detach() != keys_before).any(-1)
        if step >= 2:     # both slots valid: every new write evicts, its moments are zeroed
            assert written.sum() == 2 and state_before[written].abs().sum() > 0
            assert (optimizer.state[head.global_memory.keys]['exp_avg'][written] == 0).all()
            kept = ~written
            torch.testing.assert_close(
                optimizer.state[head.global_memory.keys]['exp_avg'][kept], state_before[kept])
    assert head.global_memory.valid.all()


def test_fixed_lr_group_ignores_warmup_and_cosine_schedulers():
    """A ``fixed_lr`` group is updated at exactly that lr under warm-up + cosine (mmengine's
    schedulers scale every group's ``lr``); the other group follows the schedule."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.optim.scheduler import CosineAnnealingLR, LinearLR
    from mmengine.registry import init_default_scope
    init_default_scope('mmpretrain')

    model = nn.ModuleDict(dict(net=nn.Linear(3, 2), memory=nn.Linear(3, 2, bias=False)))
    ref_mem = nn.Parameter(model['memory'].weight.detach().clone())
    wrapper = build_optim_wrapper(model, dict(
        optimizer=dict(type='HybridSGDAdam', lr=0.1, momentum=0.9, weight_decay=0.0),
        paramwise_cfg=dict(custom_keys={'memory': dict(adam=True, lr_mult=1e-4,
                                                       decay_mult=0.0, fixed_lr=1e-3)})))
    optimizer = wrapper.optimizer
    mem_group = next(g for g in optimizer.param_groups if g['adam'])
    net_group = next(g for g in optimizer.param_groups if not g['adam'])
    schedulers = [LinearLR(optimizer, start_factor=1e-3, by_epoch=False, begin=0, end=3),
                  CosineAnnealingLR(optimizer, T_max=5, by_epoch=False, begin=3, end=8)]
    ref = torch.optim.Adam([ref_mem], lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    scheduled = []
    for _ in range(8):
        grad = torch.randn(2, 3, generator=gen)
        model['memory'].weight.grad = grad.clone()
        ref_mem.grad = grad.clone()
        for p in model['net'].parameters():
            p.grad = torch.ones_like(p)
        optimizer.step()
        ref.step()
        scheduled.append(mem_group['lr'])
        assert HybridSGDAdam.group_lr(mem_group) == 1e-3
        for scheduler in schedulers:
            scheduler.step()
    # the schedulers did move the memory group's lr (far below 1e-3): it was ignored
    assert max(scheduled) < 1e-4 and scheduled[0] == pytest.approx(1e-8)
    assert net_group['lr'] < 0.1 * 0.5 and HybridSGDAdam.group_lr(net_group) == net_group['lr']
    torch.testing.assert_close(model['memory'].weight.detach(), ref_mem.detach())
    # resume keeps the flag
    again = HybridSGDAdam([dict(params=[model['memory'].weight], adam=True)], lr=0.1)
    again.load_state_dict(dict(state={}, param_groups=[
        {k: v for k, v in mem_group.items() if k != 'params'} | dict(params=[0])]))
    assert again.param_groups[0]['fixed_lr'] == 1e-3


def test_fixed_lr_rejects_bad_values():
    with pytest.raises(ValueError, match='fixed_lr'):
        HybridSGDAdam([dict(params=_params(0), fixed_lr=-1.0)], lr=0.1)
    with pytest.raises(ValueError, match='fixed_lr'):
        HybridSGDAdam([dict(params=_params(0), fixed_lr='1e-5')], lr=0.1)


def test_hook_logs_value_means_and_drift():
    from mmengine.logging import MessageHub, MMLogger

    from lt_plugins.models.heads.iem_head import IEMHead
    head = IEMHead(3, 2, use_local_memory=False, global_capacity=4, num_neighbors=1,
                   warmup_iters=0)
    mem = head.global_memory
    mem.write(torch.tensor([[0., 0], [1., 1], [5., 5]]), torch.tensor([.2, .4, .9]),
              torch.tensor([0, 0, 2]))
    mem.flush()
    with torch.no_grad():           # back-propagation moved two values
        mem.values[0, 0] += 0.1
        mem.values[2, 0] -= 0.3
    hub = MessageHub.get_instance('test_iem_value_stats')
    runner = SimpleNamespace(model=nn.ModuleDict(dict(head=head)), optim_wrapper=None,
                             message_hub=hub, iter=9,
                             logger=MMLogger.get_instance('test_iem_value_stats'))
    IEMMemoryHook(log_interval=10).after_train_iter(runner, 0)
    got = {k[len('train/global_memory_'):]: v.current()
           for k, v in hub.log_scalars.items() if k.startswith('train/global_memory_')}
    assert got['fill'] == pytest.approx(3 / 12)
    assert got['value_c0'] == pytest.approx(.35) and got['value_c2'] == pytest.approx(.6)
    assert 'value_c1' not in got                      # empty class: NaN, not logged
    assert got['value_mean'] == pytest.approx((.35 + .6) / 2)
    assert got['value_min'] == pytest.approx(.35) and got['value_max'] == pytest.approx(.6)
    assert got['drift_abs'] == pytest.approx(.4 / 3) and got['drift'] == pytest.approx(-.2 / 3)
