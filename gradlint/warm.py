"""Imported once by the fork server that starts every worker (gradlint.runner), so that each
target starts with torch, the pipeline and the rules loaded instead of importing them again.

Nothing here runs a torch operation: a fork after torch's thread pools have started can leave
the child waiting on threads that were not copied into it.
"""

from gradlint import defer_dynamo

defer_dynamo.install()  # the fork server and its workers are gradlint's own processes: see defer_dynamo

import torch  # noqa: E402
import torch.nn  # noqa: E402,F401
import torch.nn.functional  # noqa: E402,F401
import torch.optim  # noqa: E402,F401
import torch.utils.flop_counter  # noqa: E402,F401  (GL604 counts its first step)

import gradlint.rule  # noqa: E402,F401  (the measurement layer comes with the contract)
import gradlint.engine  # noqa: E402,F401
import gradlint.load  # noqa: E402,F401
import gradlint.probe  # noqa: E402,F401
import gradlint.worker  # noqa: E402,F401
from gradlint.registry import all_rules  # noqa: E402

all_rules()  # imports every rule module, and scans the installed entry points once

del torch
