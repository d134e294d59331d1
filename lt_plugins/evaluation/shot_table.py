"""Render ShotAccuracy results as the many / medium / few table papers report."""
from typing import Dict

COLUMNS = ('top1', 'top5', 'many', 'medium', 'few')


def format_shot_table(metrics: Dict[str, float], title: str = '') -> str:
    """A Markdown table of the ``<prefix>/top1 .. few`` entries of ``metrics``.

    Splits without classes (absent from ``metrics``) show as ``-``.
    """
    prefixes = sorted({k.rsplit('/', 1)[0] for k in metrics
                       if '/' in k and k.rsplit('/', 1)[1] in COLUMNS})
    if not prefixes:
        return f'{title}: no shot accuracy in the metrics ({sorted(metrics)})'
    lines = [f'| {title or "metrics"} | ' + ' | '.join(COLUMNS) + ' |',
             '|---' * (len(COLUMNS) + 1) + '|']
    for prefix in prefixes:
        cells = [f'{float(metrics[f"{prefix}/{c}"]):.2f}' if f'{prefix}/{c}' in metrics
                 else '-' for c in COLUMNS]
        lines.append(f'| {prefix} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)
