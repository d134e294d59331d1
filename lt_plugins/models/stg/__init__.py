"""Building blocks of STG (sample-specific, context-aware augmentation): the generator,
Eq. 1 statistics, Eq. 3-4 augmentation, the head/tail split, the feature-cache classifier."""
from .augment import (AUGMENT_TYPES, class_strength, dropout_augment, gaussian_noise_augment,
                      stg_augment)
from .checkpoint import drop_expected_missing
from .classifier import FeatureBypassPreprocessor, FeatureCacheClassifier
from .generator import SemanticTransformationGenerator
from .split import check_threshold, head_tail_split, resolve_threshold
from .statistics import (REGRESSION_LOSSES, SampleStatSmoother, diagonal_gaussian_kl,
                         regression_loss, transformation_statistics)

__all__ = [
    'AUGMENT_TYPES', 'REGRESSION_LOSSES', 'FeatureBypassPreprocessor', 'FeatureCacheClassifier',
    'SampleStatSmoother', 'SemanticTransformationGenerator', 'check_threshold', 'class_strength',
    'diagonal_gaussian_kl', 'drop_expected_missing', 'dropout_augment', 'gaussian_noise_augment',
    'head_tail_split', 'regression_loss', 'resolve_threshold', 'stg_augment',
    'transformation_statistics'
]
