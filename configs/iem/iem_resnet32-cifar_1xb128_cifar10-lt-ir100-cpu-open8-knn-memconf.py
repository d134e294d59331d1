# IEM on the open split of CIFAR-10-LT IR100 with the recommended inference reading (global
# memory as a soft kNN over its keys, as ...-cpu-knn.py) and the IEM-specific open-set
# confidence: the mean Eq. 2 similarity of the n nearest stored global keys of any class
# (IEMHead open_confidence='memory_mass'), low for an image far from everything the memory
# holds. Training is the -open8 config's, so its checkpoint can be tested with this one
# after choosing the threshold on val with this config (the threshold file is per confidence:
# run `tools/train.py` or a val pass with this config before testing).
_base_ = ['./iem_resnet32-cifar_1xb128_cifar10-lt-ir100-cpu-open8.py']
model = dict(head=dict(
    inference_read='keys',
    inference_weights=dict(classifier=0.0, global_memory=1.0, local_memory=0.0),
    open_confidence='memory_mass'))
val_evaluator = dict(confidence_key='open_confidence',
                     threshold_out='open_threshold_memconf.json')
test_evaluator = dict(confidence_key='open_confidence',
                      threshold_file='open_threshold_memconf.json')
