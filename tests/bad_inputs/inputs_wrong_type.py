# expect: error: example_inputs() returned dict; return a tensor or a tuple of tensors
import torch


def build_model():
    return torch.nn.Linear(4, 2)


def example_inputs():
    return {"x": torch.randn(8, 4)}
