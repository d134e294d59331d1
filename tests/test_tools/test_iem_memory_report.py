"""tools/analysis/iem_memory_report.py: per-class statistics of an episodic memory."""
import torch

from lt_plugins.memory.episodic import EpisodicMemory
from tests.test_tools import load_tool


def test_class_report_separates_values_from_keys():
    """Class 1's keys sit on its queries but its values are low: Eq. 1 reads miss it, the
    key-only readings find it."""
    tool = load_tool('tools/analysis/iem_memory_report.py')
    mem = EpisodicMemory(2, 2, capacity=4, num_neighbors=2).double()
    centres = torch.tensor([[0., 0.], [4., 0.]], dtype=torch.float64)
    offsets = torch.tensor([[.1, 0], [-.1, 0], [0, .1], [0, -.1]], dtype=torch.float64)
    with torch.no_grad():
        mem.keys.copy_(centres[:, None] + offsets)
        mem.values[0] = 0.9
        mem.values[1] = 0.1
    mem.valid[0] = True
    mem.valid[1, :3] = True                      # class 1: 3 of 4 slots
    queries = torch.cat([centres[0] + 0.05 * torch.ones(3, 2, dtype=torch.float64),
                         centres[1] + 0.05 * torch.ones(3, 2, dtype=torch.float64)])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    rows = tool.class_report(mem, queries, labels)
    assert [r['slots'] for r in rows] == [4, 3]
    assert abs(rows[1]['value'] - 0.1) < 1e-6 and rows[0]['images'] == 3
    assert rows[0]['read'] == 100.0 and rows[1]['read'] == 0.0     # 0.9 > 0.1 everywhere
    assert rows[1]['knn'] == 100.0 and rows[1]['1nn'] == 100.0
    # read-all: 0.1 * ~all the mass (near) vs 0.9 * ~nothing (far) -> class 1 wins
    assert rows[1]['read-all'] == 100.0
    # squared distance from (4.05, .05) to class 1's two nearest keys, by hand
    d = ((mem.keys.detach()[1, :3] - queries[3]) ** 2).sum(-1).sort().values[:2].mean()
    assert abs(rows[1]['d_own'] - float(d)) < 1e-9
    assert rows[1]['d_other'] > 10 * rows[1]['d_own']
    # region queries (N, R, D) are averaged per image
    rows_r = tool.class_report(mem, queries.unsqueeze(1).repeat(1, 3, 1), labels)
    assert [r['knn'] for r in rows_r] == [r['knn'] for r in rows]
