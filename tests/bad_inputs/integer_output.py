# expect: error: the model output is an integer tensor (torch.int64); gradlint needs a float output to backpropagate through
import torch
import torch.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(x).argmax(-1)


def build_model():
    return Net()
