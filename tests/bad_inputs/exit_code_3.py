# expect: error: the model's code called sys.exit(3) during import
import sys

import torch

sys.exit(3)


def build_model():
    return torch.nn.Linear(4, 2)
