# expect: error: import failed: ModuleNotFoundError: No module named 'not_a_real_package_xyz'
import not_a_real_package_xyz
import torch


def build_model():
    return torch.nn.Linear(4, 2)
