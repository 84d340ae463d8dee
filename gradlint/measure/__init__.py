"""The measurements rules read, one module per kind, each computed once per model and cached on the
rule context (gradlint.rule.RuleContext's accessors). Rules reach them only through gradlint.rule.

Over the trace (the recorded forward pass; no extra passes):
- graph: dataflow paths, residual chains, the depth profile;
- signal: the chains of weighted layers and activations, critical init gains and slopes;
- activations: activation calls grouped by the line a fix changes;
- attention: softmaxes over query-key products, their scale and logits;
- numerics: which ops bound, pass through or guard a value;
- norm: the encoder a normalization layer belongs to;
- source: the user's source expressions, for fixes that quote them.

Over the probe (the shared forward and backward pass):
- gradients: the backward signal per weighted layer and how it grows with depth.

Passes of their own over the example batch (counted in RuleContext.passes):
- surface: the loss as a function of the parameters, and Hessian-vector products on it;
- hessian: the top Hessian eigenvalue (Lanczos);
- first_step: the optimizer's first update and the loss after it;
- lookahead: a few real optimizer steps on a copy of the model;
- recurrent: recurrent weights' spectral radii and the gradient through time;
- optimizer: the first step's update ratios, lr naming, and where the optimizer is built;
- memory: what a measurement may hold, by the model's size;
- vectors: flat-vector arithmetic over per-parameter tensors.

No module here imports torch at import time (the registry imports the rule contract on every
run), nor anything above the measurements (engine, load, emit, cli).
"""
