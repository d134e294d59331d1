from .cifar_lt import CIFAR10LT, CIFAR100LT
from .class_counts import get_class_counts, get_gt_labels, labels_to_counts
from .digits_lt import DigitsLT
from .feature_vectors import FeatureVectorDataset, save_feature_npz
from .fashion_mnist_lt import FashionMNISTLT
from .list_lt import INaturalist2018, ImageNetLT, PlacesLT
from .long_tailed import LongTailedDataset, draw_long_tailed_split, long_tailed_counts
from .packed_lt import PackedLT
from .reid import ReIDDataset
from .samplers import (ClassAwareSampler, ClassBalancedSampler, InstanceBalancedSampler,
                       ProgressivelyBalancedSampler, SquareRootSampler)

__all__ = [
    'CIFAR10LT', 'CIFAR100LT', 'ClassAwareSampler', 'ClassBalancedSampler', 'DigitsLT',
    'FeatureVectorDataset', 'save_feature_npz',
    'FashionMNISTLT', 'INaturalist2018', 'ImageNetLT', 'InstanceBalancedSampler',
    'LongTailedDataset', 'PackedLT', 'PlacesLT', 'ProgressivelyBalancedSampler', 'ReIDDataset',
    'SquareRootSampler', 'draw_long_tailed_split', 'get_class_counts', 'get_gt_labels',
    'labels_to_counts', 'long_tailed_counts'
]
