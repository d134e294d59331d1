# cRT after MBJ at lr 1e-4 (issue 18): does the backbone MBJ fine-tuned at lr 1e-4 give cRT
# better features than CE's? Backbone frozen, classifier re-initialised, class-balanced
# sampling, lr 0.1 cosine, 10 epochs (the benchmark arm `mbj-lr1e-4+crt` of
# tools/benchmark/run.py).
_base_ = ['./mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-3-then-crt.py']
load_from = 'work_dirs/mbj_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-lr1e-4/epoch_10.pth'
