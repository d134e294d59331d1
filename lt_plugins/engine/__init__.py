from .hooks import *  # noqa: F401,F403
from .loops import *  # noqa: F401,F403
from .optimizers import *  # noqa: F401,F403
from .checkpoint_check import install_named_read_errors

install_named_read_errors()  # a checkpoint that cannot be read names its file
