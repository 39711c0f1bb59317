"""Run the whole suite on one array backend, chosen with one switch (issue 9):

    python -m pytest -q                   # cpu: NumPy (what CI runs)
    python -m pytest -q --device gpu      # CuPy on a GPU
    python -m pytest -q --device strict   # tests/strict_device.py: a CuPy stand-in on the CPU

The environment variable TINYCDAAE_TEST_DEVICE gives the default, and the chosen device is written
back to it, so subprocesses started by a test see it too. Before every test the backend is set to
the chosen device and afterwards put back to NumPy, so a test that switches the backend itself
(test_device_discipline.py) leaves nothing behind. Tests compare results on the host: wrap a
device result in backend.to_host(...) before handing it to np.testing or another np.* function.
"""
import os

import pytest
import strict_device

from tinycdaae import backend

DEVICES = ("cpu", "gpu", "strict")


def pytest_addoption(parser):
    parser.addoption("--device", choices=DEVICES, default=os.environ.get("TINYCDAAE_TEST_DEVICE", "cpu"),
                     help="array backend the tests run on: cpu (NumPy, default), gpu (CuPy) or strict "
                          "(the CuPy stand-in tests/strict_device.py); default from $TINYCDAAE_TEST_DEVICE")


def _select(device):
    if device == "strict":
        backend.use_module(strict_device.xp, "strict")
    else:
        backend.use(device)


def pytest_configure(config):
    device = config.getoption("--device")
    if device not in DEVICES:          # a bad $TINYCDAAE_TEST_DEVICE: argparse checks only the flag
        raise pytest.UsageError(f"TINYCDAAE_TEST_DEVICE={device!r}: choose one of {', '.join(DEVICES)}")
    try:
        _select(device)                # fail once, here, rather than in every test
    except backend.BackendError as err:
        raise pytest.UsageError(f"--device {device}: {err}") from None
    finally:
        backend.use("cpu")
    os.environ["TINYCDAAE_TEST_DEVICE"] = device


def pytest_collection_modifyitems(config, items):
    """Under --device strict, leave out the tests whose code under test runs in another process
    (run.py in a subprocess, a notebook kernel): that process picks its own device (--device cpu),
    so on the stand-in they would repeat the cpu pass and check nothing new. They are the tests
    marked other_process, and those asking for `env`, test_cli.py's subprocess environment. Also
    left out: the tests marked long_training (hundreds of steps), whose device discipline the
    shorter training tests already check, step for step the same code, on the stand-in."""
    if config.getoption("--device") != "strict":
        return
    elsewhere = [item for item in items
                 if item.get_closest_marker("other_process") or item.get_closest_marker("long_training")
                 or "env" in getattr(item, "fixturenames", ())]
    if elsewhere:
        config.hook.pytest_deselected(items=elsewhere)
        items[:] = [item for item in items if item not in elsewhere]


def pytest_report_header(config):
    return f"tinycdaae test device: {config.getoption('--device')}"


_HOST_ONLY = strict_device.host_only_functions()     # np.asarray, np.testing... refusing device arrays


@pytest.fixture(autouse=True)
def device(request):
    """The chosen device name; the backend is switched to it for the test, and back to NumPy after.
    Under strict, np.asarray / np.array / np.testing's comparisons also refuse device arrays, as
    they do on CuPy (the stand-in's arrays cannot refuse them by themselves)."""
    name = request.config.getoption("--device")
    with pytest.MonkeyPatch.context() as patch:   # not the test's monkeypatch: its undo() keeps these
        if name == "strict":
            for module, function_name, replacement in _HOST_ONLY:
                patch.setattr(module, function_name, replacement)
        _select(name)
        yield name
        backend.use("cpu")
