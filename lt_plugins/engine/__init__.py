from .hooks import *  # noqa: F401,F403
from .loops import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .checkpoint_check import install_named_read_errors
from .fast_path import install_fast_path

install_named_read_errors()  # a checkpoint that cannot be read names its file
install_fast_path()  # a config's `fast_path` (bfloat16 autocast, channels-last, compile)
