"""What a lesson's links may name: the lab's pages and the settings each keeps in its address.

A page declares its settings with `url_state("<page>", [keys…])` (pages/lab_ui/url_state.py). They are read here
from the page's source (ast; the pages are not imported, they are Streamlit scripts), so `lessons check` knows them
without a running app; `model` (the model picker's own; `model_a`, `model_b` on Compare) must be
`shipped:<name>` of a shipped checkpoint.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from diffusion_core.io.files import PROJECT_ROOT
from diffusion_core.process.degradations import DEGRADATION_KINDS

from .format import Link

MODEL_KEYS = ("model", "model_a", "model_b")  # the model pickers' own (Compare has two), as shipped:<name>


def knob_keys(key: str) -> list[str]:
    """The widget keys of every registered sampler's knobs under `key` (what pages/lab_ui's knob_keys gives)."""
    from diffusion_core.samplers.registry import SAMPLERS, discover

    discover()
    return sorted({f"{key}_{k.name}" for spec in SAMPLERS.values() for k in spec.knobs})


@functools.cache
def page_settings(page: str, root: Path = PROJECT_ROOT) -> tuple[str, ...] | None:
    """The address keys (names or `prefix*`) of `page` ("pages/3_Reverse_diffusion.py"), () for a page without
    any, None when there is no such page."""
    path = root / page
    if not (path.is_file() and path.suffix == ".py" and (page.startswith("pages/") or page == "streamlit_app.py")):
        return None
    keys: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "url_state" and len(node.args) == 2:
            # the page's own literal list (with knob_keys(…) calls and comprehensions over the degradation
            # kinds): project code, evaluated with nothing but those two in reach
            try:
                value = eval(compile(ast.Expression(node.args[1]), str(path), "eval"),  # noqa: S307
                             {"__builtins__": {}, "knob_keys": knob_keys, "DEGRADATION_KINDS": DEGRADATION_KINDS})
            except Exception as exc:  # a page whose keys are not literal: say so rather than crash the check
                raise ValueError(f"{page}: its url_state keys are not a literal list ({exc})") from None
            keys.extend(value)
    return tuple(keys)


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(key == p or (p.endswith("*") and key.startswith(p[:-1])) for p in patterns)


def link_problem(link: Link) -> str | None:
    """What is wrong with a link (a page that does not exist, a setting the page does not keep, a model that is
    not shipped), or None."""
    from diffusion_core.io.checkpoints import shipped_dir

    try:
        keys = page_settings(link.page)
    except ValueError as exc:
        return str(exc)
    if keys is None:
        pages = sorted(p.relative_to(PROJECT_ROOT).as_posix() for p in (PROJECT_ROOT / "pages").glob("*.py"))
        return f"no page {link.page!r}: one of {', '.join(pages)}"
    for name, value in link.settings.items():
        if name in MODEL_KEYS:
            if "model_picker(" not in (PROJECT_ROOT / link.page).read_text():
                return f"{link.page} has no model picker: drop {name}="
            kind, _, stem = str(value).partition(":")
            if kind != "shipped" or not (shipped_dir() / f"{stem}.json").is_file():
                return (f"{name}={value!r}: write {name}=shipped:<name> with a shipped checkpoint's name "
                        f"(one of {', '.join(sorted(p.stem for p in shipped_dir().glob('*.json')))})")
        elif not _matches(name, keys):
            return f"{link.page} keeps no setting {name!r} in its address (it keeps {', '.join(keys) or 'none'})"
    return None
