"""Where estimators and gates are found: by the name they registered under, or by import path.

A class registers itself where it is defined (`@register_estimator("name")`,
`@register_gate("name")`); a config may also name one by its import path
("package.module.Class"), which imports the module (and so registers what it defines).
"""

from __future__ import annotations

import importlib


def lookup(registry: dict, name: str, base: type, kind: str) -> type:
    if name in registry:
        return registry[name]
    if "." in str(name):
        module, _, attr = str(name).replace(":", ".").rpartition(".")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot import {kind} {name!r} ({e}); put its package on PYTHONPATH") from None
        if isinstance(cls, type) and issubclass(cls, base):
            return cls
        raise ValueError(f"{kind} {name!r} is not a {base.__module__}.{base.__name__} subclass")
    raise ValueError(f"unknown {kind} {name!r}: one of {', '.join(registry)}, or an import path package.module.Class")
