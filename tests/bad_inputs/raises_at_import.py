# expect: error: error while importing: RuntimeError: CUDA is required
import torch

raise RuntimeError("CUDA is required")


def build_model():
    return torch.nn.Linear(4, 2)
