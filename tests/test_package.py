"""Import has no side effects; the CLI answers."""

import subprocess
import sys


def test_import_is_light():
    code = "import sys, facespace; print('torch' in sys.modules, 'facespace.models' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_every_public_name_resolves():
    import facespace

    for name in facespace.__all__:
        assert getattr(facespace, name) is not None, name


def test_cli_version(run_cli):
    import facespace

    code, out, _ = run_cli("version")
    assert code == 0 and out.strip() == facespace.__version__


def test_cli_unknown_command_exits_nonzero(run_cli):
    code, _, err = run_cli("no-such-command")
    assert code != 0 and "no-such-command" in err
