from .hooks import *  # noqa: F401,F403
from .loops import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .atomic_checkpoint import install_atomic_checkpoints
from .checkpoint_check import install_named_read_errors
from .fast_path import install_fast_path
from .random_state import RandomStateHook, install_random_state
from .scheduler_resume import install_scheduler_resume

install_named_read_errors()  # a checkpoint that cannot be read names its file
install_atomic_checkpoints()  # checkpoints written by rename; auto-resume skips a bad newest
install_scheduler_resume()  # a scheduler's default `end` follows the resuming run
install_random_state()  # every Runner stores the random state and keys data augmentation
install_fast_path()  # a config's `fast_path` (bfloat16 autocast, channels-last, compile)
