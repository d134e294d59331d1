#!/usr/bin/env bash
# Install lt_plugins and the versions CI tests with into ./.venv (created if missing).
#   bash tools/install.sh            # then use .venv/bin/python
# Without CUDA-specific wheels on the index, pip takes the registry's regular torch (a CUDA
# build, ~5 GB; it runs on CPU too).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -c requirements/ci-constraints.txt -e ".[tests]"
.venv/bin/python -c "import lt_plugins, mmpretrain, torch; print('lt_plugins', lt_plugins.__version__, '| mmpretrain', mmpretrain.__version__, '| torch', torch.__version__)"
