"""Arithmetic shared by several ops: sliding-window output lengths and broadcasting."""

from __future__ import annotations

from netspec.errors import OpError


def window_length(size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil_mode: bool = False) -> int:
    """Output length of a sliding window, exactly as PyTorch computes it
    (``pooling_output_shape``), or a number below 1 where PyTorch refuses.

    ``floor((size + 2*pad - dilation*(kernel-1) - 1) / stride) + 1``, the division
    rounding towards minus infinity; with ``ceil_mode`` it rounds up, and a last window
    that would start in the right padding is dropped. A ceil-mode window may overhang
    the padded input (kernel 4, padding 1 on a size-1 input gives 1, as PyTorch does).
    """
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def window_output(
    kind: str,
    hw: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    pad: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """Output height and width of a 2-D window op, or an OpError when one falls below 1."""
    out = tuple(window_length(hw[i], kernel[i], stride[i], pad[i], dilation[i], ceil_mode) for i in (0, 1))
    if min(out) < 1:
        eff = tuple(dilation[i] * (kernel[i] - 1) + 1 for i in (0, 1))
        raise OpError(
            f"output size would be {max(out[0], 0)}x{max(out[1], 0)}: the input is {hw[0]}x{hw[1]}, too small for a "
            f"{eff[0]}x{eff[1]} {kind} window with padding {pad[0]}x{pad[1]}"
        )
    return out[0], out[1]


def broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    """NumPy/PyTorch broadcasting of per-sample shapes, aligned on the right."""
    rank = max(len(s) for s in shapes)
    out = []
    for axis in range(rank):
        dims = {s[len(s) - rank + axis] for s in shapes if len(s) - rank + axis >= 0} - {1}
        if len(dims) > 1:
            raise OpError("shapes " + ", ".join(fmt_shape(s) for s in shapes) + " do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def fmt_shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
