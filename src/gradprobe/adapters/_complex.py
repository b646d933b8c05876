"""What a framework check of complex tensors supports.

A complex input is checked through its real and imaginary parts (`params._complex`); forward-mode
oracles, forward-mode rules and higher orders build tangents and cotangents per element and are
not defined for those parts, so they are refused before any work.
"""

from __future__ import annotations

from .._errors import InvalidArgument


def refuse_complex_derivatives(complex_names: list[str], argument: str, *, oracle: str, mode: str, order: int) -> None:
    """An error naming the option that does not apply to the complex inputs `complex_names` of
    `argument` (``oracle="forward"``, ``mode="forward"``/``"both"``, ``order`` above 1)."""
    if not complex_names:
        return
    asked = [
        (name, value) for name, value, default in (("oracle", oracle, "differences"), ("mode", mode, "reverse"), ("order", order, 1))
        if value != default
    ]  # fmt: skip
    if asked:
        name, value = asked[0]
        tensors = ", ".join(f"`{n}`" for n in complex_names[:3])
        raise InvalidArgument(
            f"`{name}`={value!r} is not supported for complex {argument} ({tensors}): they are checked through their "
            f"real and imaginary parts, by reverse mode at order 1. Leave `{name}` at its default, or check a real "
            "function of the real and imaginary parts.",
            argument=name,
        )
