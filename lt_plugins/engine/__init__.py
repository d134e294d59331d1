from .hooks import *  # noqa: F401,F403
from .loops import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .checkpoint_check import install_named_read_errors

install_named_read_errors()  # a checkpoint that cannot be read names its file
from .atomic_checkpoint import install_atomic_checkpoints

install_atomic_checkpoints()  # checkpoints written by rename; auto-resume skips a bad newest
from .scheduler_resume import install_scheduler_resume

install_scheduler_resume()  # a scheduler's default `end` follows the resuming run
