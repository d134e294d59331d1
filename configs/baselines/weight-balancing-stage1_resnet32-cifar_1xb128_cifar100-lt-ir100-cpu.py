# Weight balancing (Alshammari et al., CVPR 2022), stage 1, ResNet-32, CIFAR-100-LT IR100: CE with
# tuned weight decay. Weight decay 5e-3 with SGD lr 0.02 (batch 128), momentum 0.9: the paper's
# CIFAR-LT setting (lr 0.01 at batch 64, scaled linearly; weight decay 5e-3 found by its grid
# search), 25x the 2e-4 of the CE baseline. Why: the stronger decay keeps the classifier rows small
# and balanced in norm and learns better features (the paper's Sec. 4-5). Schedule: the 30-epoch
# CPU schedule (warm-up, cosine). Next:
# weight-balancing_resnet32-cifar_1xb128_cifar100-lt-ir100-cpu.py.
_base_ = ['./ce_resnet32-cifar_1xb128_cifar100-lt-ir100-cpu.py']

optim_wrapper = dict(optimizer=dict(lr=0.02, weight_decay=5e-3))
