"""Property-based: random specs over every registered op (convolutions with random
kernel, stride, padding, dilation and groups; pools with ceil_mode; linear, norms,
activations; add/concat/multiply over branches; blocks with repeat and when; names
that are Python keywords, builtins or PyTorch's reserved words). For each, netspec's
per-layer shapes, params, buffers and MACs equal the compiled module's and a PyTorch
reference's, the ONNX file passes the full checker and ONNX's shape inference, and
onnxruntime reproduces the module's outputs; or netspec refuses it, with a located
error, where PyTorch refuses too or the refusal is a deliberate one (``DELIBERATE``).
``benchmarks/soak_property.py`` runs the same checks on thousands of cases."""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")
pytest.importorskip("onnxruntime")
pytest.importorskip("torch")
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")  # PyTorch's note, not ours

from hypothesis import HealthCheck, given, settings  # noqa: E402
from property_specs import Case, cases, check  # noqa: E402

from netspec.ops import REGISTRY  # noqa: E402

# derandomised: CI sees the same cases on every run (the soak script draws new ones)
settings.register_profile(
    "netspec",
    max_examples=300,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(settings.get_profile("netspec"))
@given(cases())
def test_static_figures_torch_and_onnxruntime_agree(case: Case) -> None:
    outcome = check(case)
    assert not outcome.disagreement, f"{outcome.kind}: {outcome.detail}\n{case.text}"


def test_the_generator_covers_every_registered_op() -> None:
    seen: set[str] = set()

    @settings(settings.get_profile("netspec"), max_examples=300)
    @given(cases())
    def collect(case: Case) -> None:
        seen.update(layer.op for layer in case.layers)

    collect()
    assert set(REGISTRY) - {"input"} <= seen
