# expect: error: build_model() raised ValueError: bad width
import torch


def build_model():
    raise ValueError("bad width")
