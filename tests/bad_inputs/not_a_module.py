# expect: error: build_model gave int, not a torch.nn.Module
import torch


def build_model():
    return 42
