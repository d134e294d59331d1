# Runtime shared by every lt_plugins config: MMPretrain's defaults plus the plugin import.
_base_ = 'mmpretrain::_base_/default_runtime.py'

custom_imports = dict(imports=['lt_plugins'], allow_failed_imports=False)

# Hands the training class counts to heads, memory banks and ShotAccuracy and stores them
# in checkpoints (importing lt_plugins adds it to any Runner that lacks it; listed here to
# make it visible).
# RandomStateHook puts every rank's random state into checkpoints and keys data augmentation
# by (seed, epoch, position, rank), so --resume continues bit-exactly (also added on import).
custom_hooks = [dict(type='ClassCountsHook'), dict(type='RandomStateHook')]

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2,
                    save_last=True))

randomness = dict(seed=0, deterministic=False)

# The fast path (lt_plugins/engine/fast_path.py): bfloat16 autocast where the CPU computes
# bfloat16 natively (float32 elsewhere, with one log line saying why), the backbone in the
# channels-last layout, torch.compile off. `fast_path = None` leaves the config as it is;
# `tools/train.py --no-amp / --no-channels-last / --compile` switch single parts.
fast_path = dict(amp='auto', channels_last='auto', compile=False)
