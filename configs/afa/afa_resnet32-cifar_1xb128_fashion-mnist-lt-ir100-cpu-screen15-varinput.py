# AFA + LBLS screen (issue 19), FashionMNIST-LT IR100: the text's X_var = X - X_class instead of Eq. 5's V - X_class
# (model.neck.var_source='input'); otherwise afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15.py.
_base_ = ['./afa_resnet32-cifar_1xb128_fashion-mnist-lt-ir100-cpu-screen15.py']

model = dict(neck=dict(var_source='input'))
