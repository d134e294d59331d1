# Open split of DigitsLT (smoke-test scale of the OLTR open-set protocol): digits 0-7 are
# known (profile over 8 classes: 150, 94, 59, 37, 23, 15, 9, 6), digits 8 and 9 are unknown
# (label -1) in val (5 per class each) and test (20 per class). The threshold is chosen on
# val (written to <work_dir>/open_threshold.json) and read back by the test evaluator.
_base_ = ['./digits_lt.py']

known_classes = 8
data_preprocessor = dict(num_classes=known_classes)
train_dataloader = dict(dataset=dict(known_classes=known_classes))
val_dataloader = dict(dataset=dict(known_classes=known_classes))
test_dataloader = dict(dataset=dict(known_classes=known_classes))
val_evaluator = dict(_delete_=True, type='OpenSetShotAccuracy', select_threshold=True,
                     threshold_out='open_threshold.json')
test_evaluator = dict(_delete_=True, type='OpenSetShotAccuracy',
                      threshold_file='open_threshold.json')
