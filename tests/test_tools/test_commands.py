"""The command lines the READMEs print run as written: the interpreter they name, the scripts'
own argument parsers, the files and checkpoints they point at; the shell scripts find the
project's interpreter; CI runs what the README says; the quick start's progress filter."""
import functools
import glob
import os
import os.path as osp
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from tests.test_tools import load_tool
from tests.test_tools.test_readme_methods import readme_named_snippets

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
READMES = ['README.md'] + sorted(
    osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', '*', 'README.md')))
VENV_PYTHON = '.venv/bin/python'


def bash_commands(readme: str) -> list:
    """Every command of the ```bash blocks: continuation lines joined, comments dropped,
    ``a && b`` split."""
    text = open(osp.join(REPO, readme)).read()
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', text, flags=re.S):
        for line in block.replace('\\\n', ' ').splitlines():
            line = line.split(' #')[0].strip()
            if line and not line.startswith('#'):
                commands += [part.strip() for part in line.split('&&')]
    return commands


def all_commands() -> list:
    return [(readme, cmd) for readme in READMES for cmd in bash_commands(readme)]


def test_readmes_have_commands():
    tools = [c for _, c in all_commands() if 'tools/' in c]
    assert len(tools) >= 10 and any(r != 'README.md' for r, c in all_commands())


@pytest.mark.parametrize('readme,command', all_commands())
def test_no_bare_python(readme, command):
    """A fresh machine after tools/install.sh has no lt_plugins on the PATH's python."""
    first = shlex.split(command)[0]
    assert first not in ('python', 'python3'), (
        f'{readme}: `{command}` needs the project interpreter: write {VENV_PYTHON}')


@functools.lru_cache(maxsize=None)
def max_epochs_of(config: str) -> int:
    from mmengine.config import Config
    return Config.fromfile(config).train_cfg.max_epochs


@pytest.fixture(scope='module')
def snippet_dir(tmp_path_factory):
    """The README's named configs written as files, as a user saves them."""
    folder = tmp_path_factory.mktemp('snippets')
    for name, text in readme_named_snippets().items():
        (folder / name).write_text(text)
    return folder


def config_path(arg: str, snippet_dir) -> str:
    if arg.startswith('configs/'):
        return osp.join(REPO, arg)
    return str(snippet_dir / arg)


def check_checkpoint(path: str, snippet_dir, where: str) -> None:
    """``work_dirs/<config name>/epoch_<N>.pth`` is where that config's last epoch lands."""
    match = re.fullmatch(r'work_dirs/([^/]+)/epoch_(\d+)\.pth', path)
    if match is None:
        return
    stem, epoch = match.group(1), int(match.group(2))
    candidates = glob.glob(osp.join(REPO, 'configs', '**', stem + '.py'), recursive=True)
    candidates += [str(snippet_dir / (stem + '.py'))] if (snippet_dir / (stem + '.py')).is_file() \
        else []
    assert candidates, f'{where}: {path} names no config {stem}.py'
    assert max_epochs_of(candidates[0]) == epoch, (
        f'{where}: {path}, but {stem}.py trains {max_epochs_of(candidates[0])} '
        'epochs')


TOOL_PARSERS = {}


def parse_with_tool(script: str, args: list, monkeypatch):
    """The script's own ``parse_args`` on the README's arguments (no training)."""
    if script not in TOOL_PARSERS:
        TOOL_PARSERS[script] = load_tool(script)
    monkeypatch.setattr(sys, 'argv', [script] + args)
    return TOOL_PARSERS[script].parse_args()


@pytest.mark.parametrize('readme,command', [(r, c) for r, c in all_commands()
                                             if c.startswith(f'{VENV_PYTHON} tools/')])
def test_python_command_parses_and_points_at_real_files(readme, command, snippet_dir,
                                                       monkeypatch):
    words = shlex.split(command)
    script, args = words[1], words[2:]
    assert osp.isfile(osp.join(REPO, script)), f'{readme}: {script} does not exist'
    monkeypatch.setenv('LOCAL_RANK', os.environ.get('LOCAL_RANK', '0'))
    try:
        parsed = parse_with_tool(script, args, monkeypatch)
    except SystemExit as exc:
        pytest.fail(f'{readme}: `{command}` is refused by {script}: exit {exc.code}')
    config = getattr(parsed, 'config', None)
    if config is None or config == 'CONFIG':  # a placeholder in the text
        return
    assert osp.isfile(config_path(config, snippet_dir)), (
        f'{readme}: `{command}` names {config}, which is neither in configs/ nor a README '
        'config (a python block starting with "# <name>.py")')
    if getattr(parsed, 'checkpoint', None):
        check_checkpoint(parsed.checkpoint, snippet_dir, f'{readme}: `{command}`')


@pytest.mark.parametrize('name', sorted(readme_named_snippets()))
def test_snippet_load_from_names_a_real_last_epoch(name, snippet_dir):
    from mmengine.config import Config
    load_from = Config.fromfile(str(snippet_dir / name)).get('load_from')
    if load_from:
        check_checkpoint(load_from, snippet_dir, f'README {name}')


@pytest.mark.parametrize('readme,command',
                         [(r, c) for r, c in all_commands() if c.startswith('bash ')])
def test_shell_commands_name_existing_scripts(readme, command):
    assert osp.isfile(osp.join(REPO, shlex.split(command)[1])), f'{readme}: {command}'


def test_readme_tools_run_under_the_named_interpreter():
    """The README's first tools/train.py line, as printed, with --help appended (argparse
    stops there, after every import): the interpreter the README names has what the tools
    need. (tools/test.py imports the same; its lines are parsed in-process above.)"""
    if not osp.isfile(osp.join(REPO, VENV_PYTHON)):
        pytest.skip(f'no {VENV_PYTHON} in this checkout (bash tools/install.sh creates it)')
    command = next(c for _, c in all_commands() if c.startswith(f'{VENV_PYTHON} tools/train.py'))
    proc = subprocess.run(shlex.split(command) + ['--help'], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, f'{command}\n{proc.stderr[-2000:]}'
    assert 'usage:' in proc.stdout and '--cfg-options' in proc.stdout


# -- the shell scripts find the interpreter ------------------------------------------------------
STUB = """#!/bin/sh
# a stand-in interpreter: answers the import check, records every other call
case "$1" in -c) exit ${STUB_IMPORT_RC:-0};; esac
echo "$0 $*" >> "$RECORD"
"""


def fake_repo(tmp_path, venv: bool):
    root = tmp_path / 'repo'
    (root / 'tools').mkdir(parents=True)
    for name in ('dist_train.sh', 'dist_test.sh', 'find_python.sh'):
        shutil.copy(osp.join(REPO, 'tools', name), root / 'tools' / name)
    if venv:
        (root / '.venv' / 'bin').mkdir(parents=True)
        stub = root / '.venv' / 'bin' / 'python'
        stub.write_text(STUB)
        stub.chmod(0o755)
    bindir = tmp_path / 'bin'
    bindir.mkdir()
    for name in ('python3', 'python'):
        (bindir / name).write_text(STUB)
        (bindir / name).chmod(0o755)
    return root, bindir


def run_script(root, bindir, record, *args, **env):
    full_env = dict(PATH=f'{bindir}{os.pathsep}/usr/bin:/bin', RECORD=str(record), **env)
    return subprocess.run(['bash', *args], cwd=str(root), env=full_env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.parametrize('venv,python_env,expected', [
    (True, None, '.venv/bin/python'),   # the repo's venv, made by tools/install.sh
    (False, None, 'bin/python3'),       # none: python3 from PATH (never a bare `python`)
    (True, 'custom', 'custom/python'),  # PYTHON wins
])
def test_dist_scripts_find_the_project_interpreter(tmp_path, venv, python_env, expected):
    root, bindir = fake_repo(tmp_path, venv)
    env = {}
    if python_env:
        custom = tmp_path / 'custom'
        custom.mkdir()
        (custom / 'python').write_text(STUB)
        (custom / 'python').chmod(0o755)
        env['PYTHON'] = str(custom / 'python')
    record = tmp_path / 'calls.txt'
    proc = run_script(root, bindir, record, 'tools/dist_train.sh', 'cfg.py', '2', '--amp', **env)
    assert proc.returncode == 0, proc.stderr
    proc = run_script(root, bindir, record, 'tools/dist_test.sh', 'cfg.py', 'ck.pth', '2', **env)
    assert proc.returncode == 0, proc.stderr
    train_call, test_call = record.read_text().splitlines()
    for call in (train_call, test_call):
        interpreter = call.split()[0]
        assert interpreter.endswith(expected), call
        assert ' -m torch.distributed.run ' in call and '--nproc_per_node=2' in call
    assert train_call.endswith('tools/train.py cfg.py --launcher pytorch --amp')
    assert test_call.endswith('tools/test.py cfg.py ck.pth --launcher pytorch')


def test_dist_script_says_what_to_do_without_the_environment(tmp_path):
    root, bindir = fake_repo(tmp_path, venv=False)
    record = tmp_path / 'calls.txt'
    proc = run_script(root, bindir, record, 'tools/dist_train.sh', 'cfg.py', '2',
                      STUB_IMPORT_RC='1')
    assert proc.returncode == 1 and not record.exists()
    assert 'cannot import mmpretrain' in proc.stderr and 'bash tools/install.sh' in proc.stderr
    assert 'PYTHON=' in proc.stderr


# -- CI and the README agree; tests run without xdist -------------------------------------------
def test_ci_runs_the_readme_quick_start_commands_verbatim():
    ci = [line for line in open(osp.join(REPO, '.ci', 'run')).read().splitlines()
          if line.startswith('bash tools/install.sh')]
    text = open(osp.join(REPO, 'README.md')).read()
    quick = text[text.index('## Quick start'):text.index('\n## ', text.index('## Quick start'))]
    readme = [block.strip() for block in re.findall(r'```bash\n(.*?)```', quick, flags=re.S)]
    assert ci == readme and len(ci) == 2
    assert '-n 2' in ci[1]  # CI stays parallel


def test_pytest_runs_plainly_without_xdist(tmp_path):
    """pytest.ini must not force xdist options: `-p no:xdist` would refuse them."""
    test_file = tmp_path / 'test_plain.py'
    test_file.write_text('def test_plain():\n    assert True\n')
    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-c', osp.join(REPO, 'pytest.ini'), '--rootdir', REPO,
         '-p', 'no:xdist', '--noconftest', '-q', str(test_file)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert '1 passed' in proc.stdout


# -- the quick start's one line per epoch ------------------------------------------------------------
LOG = """\
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=10)
12/02 14:10:09 - mmengine - INFO - Epoch(train)  [1][ 5/16]  lr: 3.0e-03  eta: 0:01:31  time: 0.07  data_time: 0.007  loss: 2.1682
12/02 14:10:09 - mmengine - INFO - Epoch(train)  [1][15/16]  lr: 9.2e-03  eta: 0:01:28  time: 0.05  data_time: 0.006  loss: 2.0215  loss_cls: 2.0215
12/02 14:10:10 - mmengine - INFO - Epoch(train)  [2][ 5/16]  lr: 1.3e-02  eta: 0:01:25  time: 0.05  data_time: 0.004  mbj_loss: 9.0  loss: 1.9006
12/02 14:10:10 - mmengine - INFO - Epoch(train) [10][15/16]  lr: 1.9e-02  eta: 0:01:00  time: 0.02  data_time: 0.003  loss: 1.7710
12/02 14:10:10 - mmengine - INFO - Epoch(val) [10][2/2]    shot/top1: 61.5000  shot/many: 95.0000  data_time: 0.0020  time: 0.0184
"""


def run_progress(text, label='ce'):
    proc = subprocess.run(['awk', '-v', f'label={label}', '-f', 'tools/log_progress.awk'],
                          input=text, cwd=REPO, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_progress_filter_one_line_per_epoch():
    assert run_progress(LOG) == [
        '[ce] epoch 1/30  loss 2.0215  eta 0:01:28',  # the epoch's last logged line
        '[ce] epoch 2/30  loss 1.9006  eta 0:01:25',  # `loss`, not `mbj_loss`
        '[ce] epoch 10/30  loss 1.7710  eta 0:01:00',
        '[ce] val after epoch 10: shot/top1: 61.5000  shot/many: 95.0000',
    ]


def test_quickstart_streams_progress_and_keeps_the_table():
    script = open(osp.join(REPO, 'tools', 'quickstart.sh')).read()
    train_lines = [line for line in script.replace('\\\n', ' ').splitlines()
                   if 'tools/train.py' in line]
    assert len(train_lines) == 2
    for line in train_lines:
        assert '| tee ' in line and 'awk' in line and 'tools/log_progress.awk' in line
    assert script.count("grep '^|'") == 2  # the shot tables
    assert '. tools/find_python.sh' in script


# -- documentation stays inside the repository ----------------------------------------------------
def doc_files() -> list:
    return ['README.md', 'CONTRIBUTING.md'] + sorted(
        osp.relpath(p, REPO) for p in glob.glob(osp.join(REPO, 'configs', '**', '*.md'),
                                                recursive=True))


@pytest.mark.parametrize('doc', doc_files())
def test_doc_paths_stay_inside_the_repository(doc):
    text = open(osp.join(REPO, doc)).read()
    folder = osp.dirname(osp.join(REPO, doc))
    links = re.findall(r'\]\(([^)#\s]+)\)', text)
    paths = [p for p in re.findall(r'`([^`\s]+)`', text) if '../' in p]
    for target in links + paths:
        if re.match(r'[a-z]+://', target) or target.startswith('mmpretrain::'):
            continue
        resolved = osp.normpath(osp.join(folder, target))
        assert resolved.startswith(REPO + os.sep), f'{doc}: {target} points outside the repo'
        if target in links:
            assert osp.exists(resolved), f'{doc}: link {target} does not exist'
