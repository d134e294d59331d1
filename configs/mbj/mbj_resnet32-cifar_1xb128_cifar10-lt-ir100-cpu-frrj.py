# Ablation FR+RJ (Fig. 5): FR plus Gaussian jitter of std 0.1 * ||f|| / sqrt(d) per feature.
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu.py']
model = dict(head=dict(variant='FR+RJ', rj_std=0.1))
