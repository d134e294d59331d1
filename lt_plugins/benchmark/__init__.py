"""The benchmark command's machinery (``tools/benchmark/run.py``): arms, datasets, runner."""
from .arms import ARMS, Arm, Stage, register_arm, select_arms
from .datasets import (DATASET_SPECS, DatasetSpec, get_dataset_spec, parse_value,
                       register_dataset, with_data_root)
from .merge import merge_summaries
from .report import markdown_table, plot_per_class, plot_shots, summarize
from .runner import BenchmarkRunner, load_results, plan

__all__ = [
    'ARMS', 'Arm', 'BenchmarkRunner', 'DATASET_SPECS', 'DatasetSpec', 'Stage',
    'get_dataset_spec', 'load_results', 'markdown_table', 'merge_summaries', 'parse_value', 'plan',
    'plot_per_class', 'plot_shots', 'register_arm', 'register_dataset', 'select_arms',
    'summarize', 'with_data_root'
]
