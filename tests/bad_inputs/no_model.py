# expect: error: no model found: define build_model(), a module-level `model`, or an nn.Module subclass whose constructor takes no arguments
import torch


def build_model_later():
    pass
