# expect: error: used more than 512 MB of memory during build_model() (--max-memory)
import time

import torch

kept = []


def build_model():
    for _ in range(64):  # 4 GB, 64 MB at a time: resident as it is written
        kept.append(torch.ones(16 * 2**20))
        time.sleep(0.05)
    return torch.nn.Linear(4, 2)
