# expect: error: the model's parameters are on the meta device (no values to run): build it on a real device, or use --no-probe
import torch
import torch.nn as nn


def build_model():
    with torch.device("meta"):
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
