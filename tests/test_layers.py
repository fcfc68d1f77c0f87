"""The package's layers: inference and evaluation do not import the training-data package or the trainer, and
start-up stays free of torch's compiler stack."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["gifnet.inference.fusion", "gifnet.inference.demo", "gifnet.evaluation.run"])
def test_inference_side_does_not_import_training_code(module):
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m.startswith(('gifnet.data', 'gifnet.engine', 'gifnet.losses'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout


def test_the_model_module_imports_no_inference_engine_or_process_settings():
    code = ("import sys, gifnet.models.gifnet; "
            "print(sorted(m for m in sys.modules if m.startswith(('gifnet.inference', 'gifnet.runtime'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout


def test_metric_workers_import_neither_torch_nor_the_model():
    code = "import sys, gifnet.evaluation.jobs; print('torch' in sys.modules, 'gifnet.models' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("module", ["gifnet.inference.fusion", "gifnet.models.gifnet"])
def test_start_up_imports_no_compiler_stack(module):
    """``torch._dynamo`` (torch.compile's tracer) costs ~3 s of import: fusion and the model must not pull it in."""
    code = f"import sys, {module}; print(sorted(m for m in ('torch._dynamo', 'torch._inductor') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout
