from .auto_channels import AutoChannelClassifier
from .decoupled import DecoupledClassifier
from .decoupled_label_aware import DecoupledLabelAwareClassifier
from .label_aware import LabelAwareClassifier
from .ride import RIDEClassifier

__all__ = ['AutoChannelClassifier', 'DecoupledClassifier', 'DecoupledLabelAwareClassifier',
           'LabelAwareClassifier', 'RIDEClassifier']
