"""Install lt_plugins: long-tailed recognition plugins for MMPretrain.

Dependency *ranges* live here; the exact versions CI was last run with live in
``requirements/ci-constraints.txt`` (use them with ``pip install -c``).
"""
from setuptools import find_packages, setup

def _mmcv_requirement() -> str:
    """MMPretrain 1.2 checks 2.0 <= mmcv < 2.4 and needs no compiled op, so the lite
    build is enough. A full ``mmcv`` installs into the same ``mmcv`` module: when one is
    already installed, require it (same range) instead of overwriting it with the lite build.
    """
    try:
        from importlib.metadata import PackageNotFoundError, version
        version('mmcv')
        return 'mmcv>=2.0.0,<2.4.0'
    except PackageNotFoundError:
        return 'mmcv-lite>=2.0.0,<2.4.0'


MMCV_REQUIREMENT = _mmcv_requirement()

INSTALL_REQUIRES = [
    # mmengine 0.10.x resolves ``_base_ = 'mmpretrain::...'`` through pkg_resources,
    # which setuptools >= 81 deprecates and 82 removes.
    'setuptools>=60,<81',
    'torch>=2.0',
    'torchvision>=0.15',
    'timm>=1.0',
    'mmengine>=0.10.0,<0.11',
    MMCV_REQUIREMENT,
    'mmpretrain>=1.2.0,<1.3',
    'numpy>=1.22',
    'scikit-learn>=1.0',
    'matplotlib>=3.5',
]

setup(
    name='lt_plugins',
    version='0.1.0',
    description='Long-tailed visual recognition (MBJ, IEM+RSA, STG, AFA+LBLS) '
                'as MMPretrain plugins with timm backbones',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['lt_plugins', 'lt_plugins.*']),
    python_requires='>=3.9',
    install_requires=INSTALL_REQUIRES,
    extras_require={'tests': ['pytest>=7', 'pytest-timeout>=2', 'pytest-xdist>=3']},
    include_package_data=True,
    license='Apache-2.0',
)
