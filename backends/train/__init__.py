"""Training a spec's module (``netspec train``): data, augmentation, the loop and the
run directory, one module each. Imports torch."""

from netspec.backends.train.run import Plan, Run, config_text, plan, train

__all__ = ["Plan", "Run", "config_text", "plan", "train"]
