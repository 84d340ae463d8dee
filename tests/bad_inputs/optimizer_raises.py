# expect: error: configure_optimizers() raised ValueError: Invalid learning rate: -0.1
import torch


def build_model():
    return torch.nn.Linear(4, 2)


def configure_optimizers(model):
    return torch.optim.SGD(model.parameters(), lr=-0.1)
