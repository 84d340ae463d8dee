"""gradlint's built-in rules, one rule per file, grouped by family (installed as gradlint.rules).

GL1xx depth, GL2xx initialization, GL3xx activations, GL4xx normalization, GL5xx probe backward,
GL6xx optimizer and learning rate, GL7xx recurrent nets, GL8xx attention and numerics,
GL9xx gradlint itself.
"""
