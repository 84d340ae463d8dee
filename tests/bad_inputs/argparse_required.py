# expect: error: the model's code called sys.exit(2) during import
# A training script's parser at module level: it reads sys.argv, which is the model file alone
# (as under `python argparse_required.py`), so its required option is missing.
import argparse

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--width", type=int, required=True)
args = parser.parse_args()


def build_model():
    return torch.nn.Linear(args.width, 2)
