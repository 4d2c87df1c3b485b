"""Plotly figure builders for the report's figures (GUIDE.md §2, 1–10) and the analysis views.

Every builder takes data in (arrays in [0, 1], metrics rows as read from metrics.jsonl, schedules)
and returns a plotly.graph_objects.Figure; nothing here draws to a screen or imports Streamlit.
`write_html` saves one for offline viewing (plotly.js embedded or next to the file, never a CDN).

One module per topic: style, schedules, images, curves, clusters, points, report."""

from diffusion_core.figures.clusters import (  # noqa: F401
    METHOD_NAMES,
    cluster_space_description,
    density_figure,
    pca_cluster_figure,
)
from diffusion_core.figures.curves import (  # noqa: F401
    ab_difference_figure,
    bound_by_t_figure,
    by_family,
    curves_figure,
    families_vs_nfe_figure,
    family_curves_figure,
    fid_curves_figure,
    fid_wall_clock_figure,
    final_fid_figure,
    guidance_curve_figure,
    heldout_loss_figure,
    loss_by_t_strip_figure,
    loss_curves_figure,
    novelty_figure,
    path_norms_figure,
    quality_vs_nfe_figure,
    round_trip_figure,
    spectra_figure,
)
from diffusion_core.figures.images import (  # noqa: F401
    image_panels_figure,
    neighbours_figure,
    sample_grids_figure,
    samples_at_epochs_figure,
)
from diffusion_core.figures.points import (  # noqa: F401
    density_over_time_figure,
    particle_paths_figure,
    points_histogram_figure,
    score_field_figure,
)
from diffusion_core.figures.report import (  # noqa: F401
    default_epochs,
    read_run,
    report_figures,
    write_html,
)
from diffusion_core.figures.schedules import (  # noqa: F401
    SCHEDULE_QUANTITIES,
    alpha_bar_figure,
    blur_schedule_figure,
    curve_marker_figure,
    levels_figure,
    report_schedules,
    schedule_figure,
    steps_on_log_snr_figure,
    weighting_figure,
)
from diffusion_core.figures.style import (  # noqa: F401
    GENERATED_COLOUR,
    MAX_CURVE_POINTS,
    PALETTE,
    REAL_COLOUR,
    log_ticks,
    model_colours,
    thin_indices,
)
