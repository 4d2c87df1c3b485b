"""Shared pieces of the Diffusion Lab pages (Streamlit only here; all maths stays in diffusion_core).

Why it lives in pages/lab_ui/: the top level of the repository is fixed (streamlit_app.py, pages/,
diffusion_core/, checkpoints/, tests/, requirements.txt) and diffusion_core must not import
Streamlit. Without st.navigation, Streamlit (1.67, scriptrunner `_mpa_v1`) turns every
`pages/*.py` into a page — only names starting with "." and `__init__.py` are skipped, so a
`pages/_ui.py` would show up as a page — but it globs `*.py` non-recursively, so a sub-package of
pages/ is never a page. (streamlit_app.py now builds the sidebar itself with st.navigation from
`PAGES`, which also gives Home its name; a sub-package stays correct either way.) `streamlit run`
puts the app's folder on sys.path (and pytest does via `pythonpath = ["."]`), so pages import
`from pages.lab_ui import …` (`pages` is a namespace package).

Modules: common (page setup, navigation, error display), models (cached checkpoints, the model
picker, uploads), render (image grids), data (cached test digits and classifier), inputs (number boxes
whose out-of-range values are named and refused, never silently replaced), degradation_ui (a degradation's
parameter boxes). queue_ui: compute through the server's one work queue, showing the place in line; the
background warm-up of the default model. trajectory_ui: a reverse run drawn live and one frame's slots.
train_ui: the Train page's parts (cold inputs, the estimate, a run's live panel, the table of runs).
"""

from diffusion_core.services.catalog import checkpoint_label, default_checkpoint, model_sources

from .common import PAGES, USER_ERRORS, navigation, page_links, setup_page, user_errors
from .data import load_test_digits, shipped_classifier
from .degradation_ui import degradation_param_inputs
from .inputs import InputError, NumberField, number_field, require
from .models import class_controls, describe_conditioning, load_checkpoint_cached, model_picker
from .queue_ui import run_queued, sample_batched, warm_up_default_model
from .render import grid_image, show_grid

__all__ = [
    "InputError",
    "NumberField",
    "PAGES",
    "USER_ERRORS",
    "checkpoint_label",
    "class_controls",
    "degradation_param_inputs",
    "describe_conditioning",
    "default_checkpoint",
    "grid_image",
    "load_checkpoint_cached",
    "model_picker",
    "model_sources",
    "navigation",
    "number_field",
    "page_links",
    "run_queued",
    "sample_batched",
    "require",
    "setup_page",
    "shipped_classifier",
    "show_grid",
    "load_test_digits",
    "user_errors",
    "warm_up_default_model",
]
