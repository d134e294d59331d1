from .afa_head import AFAClsHead
from .composed_cls_head import ComposedClsHead
from .decoupled_heads import LWSHead, TauNormHead
from .iem_head import IEMHead
from .iem_vector_head import IEMVectorHead
from .mbj_cls_head import MBJClsHead
from .mbj_metric_head import MBJMetricHead
from .normed_linear_head import NormedLinearClsHead
from .ride_head import RIDEHead
from .stg_cls_head import STGClsHead
from .stg_generator_head import STGGeneratorHead

__all__ = [
    'AFAClsHead', 'ComposedClsHead', 'IEMHead', 'IEMVectorHead', 'LWSHead', 'MBJClsHead',
    'MBJMetricHead', 'NormedLinearClsHead', 'RIDEHead', 'STGClsHead', 'STGGeneratorHead', 'TauNormHead'
]
