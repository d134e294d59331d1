# Importing these modules registers the timm models `resnet{20,32,44,56}_cifar` and `resnet10`.
from .context_gated_mlp import ContextGatedMLP
from .multi_expert import MultiExpertBackbone
from .resnet10_oltr import resnet10
from .resnet_cifar import CifarResNet, resnet32_cifar
from .timm_split import TimmSplitBackbone
from .vector_mlp import VectorMLP

__all__ = ['CifarResNet', 'ContextGatedMLP', 'MultiExpertBackbone', 'TimmSplitBackbone',
           'VectorMLP', 'resnet10', 'resnet32_cifar']
