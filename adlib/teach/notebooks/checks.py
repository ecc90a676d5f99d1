"""Checks the notebooks make on their own results.

A *teaching assert* checks the library against a formula (the closed form, the chi distribution): it must
hold on any data, so it stays a plain `assert`. A *quality gate* (MIN_AUROC) is a minimum that a result
reaches on the data a profile was made for; on a student's own images a low AUROC is a finding, not a bug,
so `quality_gate` warns and the notebook goes on. CI sets ADLIB_STRICT_GATES=1 (scripts/test.sh), which turns
a missed gate back into an error, so a regression on the miniature still fails the tests.
"""
import os
import warnings

STRICT_ENV = "ADLIB_STRICT_GATES"


class QualityWarning(UserWarning):
    """A notebook result below its quality gate (MIN_AUROC): worth a look, not a failure."""


def strict() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() not in ("", "0", "false", "no")


def quality_gate(what: str, value: float, minimum, parameter: str = "MIN_AUROC") -> bool:
    """True when `value` >= `minimum` (None: no gate). Below it: a QualityWarning naming the parameter that
    sets the gate, or an AssertionError under ADLIB_STRICT_GATES=1."""
    if minimum is None:
        return True
    value = float(value)
    if value >= minimum:
        print(f"quality gate: {what} {value:.3f} >= {parameter} {minimum}")
        return True
    message = (f"{what} {value:.3f} is below {parameter} = {minimum}. On your own data this can be a real "
               f"finding; lower {parameter} (or set it to None) to silence this check.")
    if strict():
        raise AssertionError(f"{message} ({STRICT_ENV} is set, so this fails)")
    warnings.warn(message, QualityWarning, stacklevel=2)
    return False
