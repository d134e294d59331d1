# Weight balancing (Alshammari et al., CVPR 2022), stage 1, ResNeXt-50, ImageNet-LT: CE with tuned
# weight decay on Kang et al.'s 90-epoch schedule. Weight decay 5e-4 (the base's, Kang et al.'s):
# the value the paper tuned for ImageNet-LT was not checked for this config, so this stage equals
# ce_resnext50_8xb64_imagenet-lt.py until a value is chosen on the validation split (--cfg-options
# optim_wrapper.optimizer.weight_decay=...). Next: weight-balancing_resnext50_8xb64_imagenet-lt.py.
_base_ = ['./ce_resnext50_8xb64_imagenet-lt.py']

optim_wrapper = dict(optimizer=dict(weight_decay=5e-4))
