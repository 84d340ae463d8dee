"""Keep `torch._dynamo` unimported in gradlint's own process until something really compiles.

torch.optim wraps `Optimizer.__init__` (through `add_param_group`), `zero_grad` and every
`step` in `torch._dynamo.disable` or `torch._dynamo.graph_break`, so the first optimizer a model
file builds imports torch._dynamo: about 1.4 s on our 2-core machine, as long as `import torch`
itself (`python -c "import torch, time; t = time.time(); import torch._dynamo; print(time.time() - t)"`).
Outside `torch.compile` both calls mean nothing: `disable(fn)` runs fn as it is and
`graph_break()` does nothing. gradlint runs models eagerly, so in the CLI's process a stand-in
module answers these two with their eager meaning, and any other attribute (a model file that
calls `torch.compile`, `torch._dynamo.config`, a submodule import) loads the real torch._dynamo
and hands over to it.

Installed by the CLI only: the pytest plugin and the Python API run inside the user's process,
whose modules gradlint does not swap.
"""

from __future__ import annotations

import importlib
import sys
import types

NAME = "torch._dynamo"
_DUNDERS_OF_USE = {"__path__", "__all__"}  # importing a submodule, `from torch._dynamo import *`


class _DeferredDynamo(types.ModuleType):
    def __init__(self) -> None:
        super().__init__(NAME, __doc__)
        self._real: types.ModuleType | None = None
        self._eager: list = []  # functions this stand-in declared disabled: dynamo must see them again

    def disable(self, fn=None, recursive=True, **kwargs):
        if self._real is not None:
            return self._real.disable(fn, recursive, **kwargs)
        if fn is None:  # used as @disable(recursive=False)
            return lambda function: self.disable(function, recursive, **kwargs)
        self._eager.append(fn)
        return fn

    def graph_break(self, msg: str = "") -> None:
        if self._real is not None:
            self._real.graph_break(msg)

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__") and name not in _DUNDERS_OF_USE:
            # inspect.getmodule asks every module in sys.modules for __file__, torch's own
            # import included: such probes must not import dynamo.
            raise AttributeError(name)
        return getattr(self._load_real(), name)

    def _load_real(self) -> types.ModuleType:
        if self._real is None:
            if sys.modules.get(NAME) is self:
                del sys.modules[NAME]
            self._real = importlib.import_module(NAME)
            # torch._compile caches disable(fn) on fn as `__dynamo_disable`; drop the eager
            # answers so that the real dynamo wraps those functions the next time they run.
            for fn in self._eager:
                if getattr(fn, "__dynamo_disable", None) is fn:
                    delattr(fn, "__dynamo_disable")
            self._eager.clear()
        return self._real


def install() -> None:
    """Put the stand-in in place, unless torch._dynamo is already imported. Imports nothing."""
    if NAME not in sys.modules:
        sys.modules[NAME] = _DeferredDynamo()


def installed() -> bool:
    return isinstance(sys.modules.get(NAME), _DeferredDynamo)
