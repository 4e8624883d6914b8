"""The operator's settings of the project (``[health]``, ``[retention]``, ``[alerts]``): from
``.dlt/config.toml`` (and ``.dlt/secrets.toml`` for a secret), each overridable in the environment as
``<SECTION>__<NAME>``, typed like its default (a number, or a list given as TOML or as JSON text)."""

from __future__ import annotations

import json
from typing import Any

from loaders.common.warehouse import ConfigurationError


def section(name: str, defaults: dict[str, Any], *, secrets: tuple[str, ...] = ()) -> dict[str, Any]:
    """``[name]``'s settings named in ``defaults``, each typed as its default; ``secrets`` are read from
    the secrets provider. A value of the wrong type is a :class:`ConfigurationError` naming it."""
    import dlt

    found = dict(defaults)
    for key, default in defaults.items():
        value = (dlt.secrets if key in secrets else dlt.config).get(f"{name}.{key}")
        if value is None:
            continue
        try:
            found[key] = _as_list(value) if isinstance(default, list) else float(value)
        except (TypeError, ValueError):
            kind = "a list" if isinstance(default, list) else "a number"
            shown = "(a secret)" if key in secrets else repr(value)
            raise ConfigurationError(f"{name}.{key} must be {kind}, got {shown}") from None
    return found


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):  # from the environment: a JSON list, or one value
        value = json.loads(value) if value.strip().startswith("[") else [value]
    if not isinstance(value, list | tuple):
        raise TypeError(value)
    return [str(item) for item in value]
