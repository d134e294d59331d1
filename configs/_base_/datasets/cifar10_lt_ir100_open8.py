# Open split of CIFAR-10-LT IR100 (the OLTR open-set protocol at CPU scale): train on the
# first 8 classes (airplane .. horse, labels 0-7), long-tailed as a K=8 problem with
# the same n_max 5000 and IR 100 (int(5000 * 100 ** (-i / 7)): 5000 .. 50); classes 8 and 9
# (ship, truck) are never trained on and are "unknown" (label -1) in val and test.
# Val: 100 discarded images per known class + 100 per unknown class (from the training pool,
# disjoint from test) -- the open-set threshold is chosen there (select_threshold) and written
# to <work_dir>/open_threshold.json; the test evaluator reads it back (never tuned on test).
# A seeded choice of known classes: known_classes=8, known_seed=<s> on all three datasets.
_base_ = ['./cifar10_lt_ir100.py']

known_classes = 8
data_preprocessor = dict(num_classes=known_classes)
train_dataloader = dict(dataset=dict(known_classes=known_classes))
val_dataloader = dict(dataset=dict(known_classes=known_classes))
test_dataloader = dict(dataset=dict(known_classes=known_classes))
val_evaluator = dict(_delete_=True, type='OpenSetShotAccuracy', select_threshold=True,
                     threshold_out='open_threshold.json')
test_evaluator = dict(_delete_=True, type='OpenSetShotAccuracy',
                      threshold_file='open_threshold.json')
