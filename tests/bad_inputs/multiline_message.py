# expect: error: build_model() raised ValueError: the config is incomplete: (+2 more lines)
import torch


def build_model():
    raise ValueError("the config is incomplete:\n  width: missing\n  depth: missing")
