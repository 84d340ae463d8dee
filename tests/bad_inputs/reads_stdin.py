# expect: error: error while importing: EOFError: EOF when reading a line
import torch

answer = input("width? ")


def build_model():
    return torch.nn.Linear(int(answer), 2)
