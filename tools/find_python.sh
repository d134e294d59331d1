# Sourced by the tools/*.sh scripts from the repository root: sets PY to the interpreter that
# runs the project -- $PYTHON when set, else the .venv that tools/install.sh creates, else
# python3 -- and stops with what to do when that interpreter cannot import MMPretrain.
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
else
    PY=python3
fi
if ! "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('mmpretrain') is None)" \
        2>/dev/null; then
    echo "$(basename "$0"): the interpreter '$PY' cannot import mmpretrain. Run" \
         "'bash tools/install.sh' (it creates .venv, which this script then uses), or set" \
         "PYTHON=/path/to/python of an environment where lt_plugins is installed." >&2
    exit 1
fi
