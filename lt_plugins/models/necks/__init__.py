from .afa_neck import AFANeck
from .rsa_neck import RSANeck

__all__ = ['AFANeck', 'RSANeck']
