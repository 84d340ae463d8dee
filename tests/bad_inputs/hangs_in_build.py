# expect: error: timed out after 5 s during build_model() (--timeout)
import threading

import torch


def build_model():
    threading.Event().wait()  # a lock nobody releases
    return torch.nn.Linear(4, 2)
