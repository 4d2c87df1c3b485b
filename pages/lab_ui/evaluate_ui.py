"""The Evaluate page's tabs beyond the report: loss by noise level (each run's training loss by t/T over its epochs,
every chosen model's loss at fixed t on held-out digits, the likelihood bound) and memorisation (nearest training
digits, novelty, the ideal denoiser), guidance, and FID against network calls across process families. Each computes
on request, through the work queue (the network-calls chart reads a benchmark's file)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from diffusion_core.editing.guidance import (
    CURVE_KINDS,
    SAMPLER,
    cannot_guide,
    describe_curve,
    guidance_curve,
    preferred_model,
    w0_meaning,
)
from diffusion_core.evaluation.likelihood import variational_bound
from diffusion_core.evaluation.noise_levels import heldout_loss_by_t
from diffusion_core.figures import (
    bound_by_t_figure,
    families_vs_nfe_figure,
    guidance_curve_figure,
    heldout_loss_figure,
    loss_by_t_strip_figure,
    neighbours_figure,
    novelty_figure,
)
from diffusion_core.process import GaussianProcess
from diffusion_core.services.catalog import default_checkpoint
from diffusion_core.views.evaluate import ModelRecord
from diffusion_core.views.memorisation import IDEAL, MAX_SAMPLES, memorisation_view, training_vectors
from diffusion_core.views.nfe_curves import read_results, results_path

from .common import user_errors
from .data import load_test_digits, load_train_digits, shipped_classifier
from .inputs import number_field, require
from .models import load_checkpoint_cached
from .queue_ui import run_queued

HELDOUT_DIGITS = 256  # held-out test digits per model
HELDOUT_POINTS = 20  # timesteps from 1 to T
BOUND_DIGITS, BOUND_T_SAMPLES = 64, 50  # held-out digits and timesteps per digit of the likelihood bound


def _heldout(record: ModelRecord, on_progress=None) -> dict:
    ckpt = load_checkpoint_cached(record.weights)
    data = load_test_digits(ckpt.config.get("dataset", "mnist"))
    return heldout_loss_by_t(ckpt.process, ckpt.model, data.images[:HELDOUT_DIGITS], data.labels[:HELDOUT_DIGITS],
                             HELDOUT_POINTS, on_progress=on_progress)


def _bound(record: ModelRecord, on_progress=None) -> dict:
    ckpt = load_checkpoint_cached(record.weights)
    data = load_test_digits(ckpt.config.get("dataset", "mnist"))
    return variational_bound(ckpt.process, ckpt.model, data.images[:BOUND_DIGITS],
                             min(BOUND_T_SAMPLES, ckpt.process.T - 1), on_progress=on_progress)


def likelihood_section(selected: list[ModelRecord], colours: dict[str, str]) -> None:
    """The DDPM variational bound in bits per dimension of each chosen noise model on held-out digits."""
    models = [r for r in selected if r.weights is not None and r.diffusion_type == GaussianProcess.type]
    st.caption(f"The variational bound on −log p(x) in bits per dimension (lower is better) on {BOUND_DIGITS} test "
               f"digits, its diffusion terms estimated from {BOUND_T_SAMPLES} timesteps per digit (± standard "
               "error). Noise models only: a cold model has no likelihood; a class-conditional model's is its "
               "unconditional one (no label).")
    if st.button("Compute the likelihood bound", key="ev_bound", disabled=not models):
        with user_errors("Could not compute the bound"):
            st.session_state["ev_bounds"] = {r.name: run_queued(_bound, r, progress=f"Bound of {r.name}")
                                             for r in models}
    bounds = {n: b for n, b in st.session_state.get("ev_bounds", {}).items() if n in {r.name for r in selected}}
    if bounds:
        st.dataframe(pd.DataFrame([{"model": n, "bits/dim": b["bpd"], "± SE": b["se"], **b["terms"]}
                                   for n, b in bounds.items()]), hide_index=True, key="ev_bound_table")
        st.plotly_chart(bound_by_t_figure(bounds, colours), key="ev_bound_fig")


def loss_by_noise_level_tab(selected: list[ModelRecord], colours: dict[str, str]) -> None:
    strips = [r for r in selected if any(row.get("loss_by_t") for row in r.rows)]
    if strips:
        name = st.selectbox("Run", [r.name for r in strips], key="ev_strip_run")
        record = next(r for r in strips if r.name == name)
        st.plotly_chart(loss_by_t_strip_figure(record.rows, f"Training loss by noise level · {name}"),
                        key="ev_strip_fig")
    else:
        st.caption("No chosen run recorded its loss by noise level (runs trained since it was added do).")
    models = [r for r in selected if r.weights is not None]
    st.caption(f"Held-out loss at {HELDOUT_POINTS} timesteps on {HELDOUT_DIGITS} test digits, ±1 standard error. "
               "Noise models' and cold models' losses are on different scales (ε against x). Each model takes "
               f"1.5–7.5 s on 2 idle CPU cores (quick-unet 1.5 s, the report's CNN 3 s, default-unet 7.4 s): "
               f"for the {len(models)} chosen, up to about {7.5 * len(models):.0f} s, longer while others "
               "compute; the bar counts down.")
    if st.button("Compute the held-out loss by noise level", key="ev_heldout", disabled=not models):
        with user_errors("Could not compute the held-out loss"):
            st.session_state["ev_heldout_curves"] = {
                r.name: run_queued(_heldout, r, progress=f"Held-out loss of {r.name}") for r in models}
    curves = {n: c for n, c in st.session_state.get("ev_heldout_curves", {}).items()
              if n in {r.name for r in selected}}
    if curves:
        st.plotly_chart(heldout_loss_figure(curves, colours), key="ev_heldout_fig")
    likelihood_section(selected, colours)


@st.cache_resource(max_entries=2, show_spinner="Embedding the training digits…")
def _training_vectors(dataset: str) -> dict:
    return training_vectors(load_train_digits(dataset), shipped_classifier()[0])


def _memorisation(record: ModelRecord | None, n: int, seed: int):
    ckpt = None if record is None else load_checkpoint_cached(record.weights)
    dataset = "mnist" if ckpt is None else ckpt.config.get("dataset", "mnist")
    return memorisation_view(ckpt, load_train_digits(dataset), load_test_digits(dataset), shipped_classifier()[0],
                             n, seed, vectors=_training_vectors(dataset))


def memorisation_tab(selected: list[ModelRecord]) -> None:
    """Does a model copy its training digits? Its samples beside their nearest training digits, and how far they lie
    from the training set against held-out real digits; the ideal denoiser as the copying extreme."""
    st.caption("Each generated digit beside its three nearest training digits, by pixels and by the classifier's "
               "features; then the distance from each generated digit to the training set against the same for "
               "held-out real digits. **Novelty** is the ratio of their medians: about 1 means as far from the "
               "training set as fresh real digits, near 0 means copies. The **ideal denoiser** is the exact "
               "minimiser of the training loss over the training set: it can only reproduce training digits.")
    classifier, why = shipped_classifier()
    if classifier is None:
        st.warning(f"The memorisation view needs the shipped classifier: {why}")
        return
    models = {r.name: r for r in selected if r.weights is not None and r.config.get("dataset", "mnist") == "mnist"}
    c1, c2, c3 = st.columns([2, 1, 1])
    options = [IDEAL, *models]
    default = default_checkpoint()
    first = options.index(default.stem) if default is not None and default.stem in models else min(1, len(models))
    name = c1.selectbox("Model", options, index=first, key="ev_mem_model",
                        help="the ideal denoiser over the training set: the memorising extreme")
    n = number_field("Samples", 2, MAX_SAMPLES, 32, "ev_mem_n", container=c2)
    seed = number_field("Seed", 0, 2**31 - 1, 0, "ev_mem_seed", container=c3)
    if st.button("Find the nearest training digits", key="ev_mem_run"):
        with user_errors("Could not compute the memorisation view"):
            require([n, seed])
            st.session_state["ev_mem"] = (name, run_queued(_memorisation, models.get(name), int(n.value),
                                                             int(seed.value), label="Sampling and searching…"))
    shown = st.session_state.get("ev_mem")
    if shown is None or shown[0] != name:
        return
    view = shown[1]
    m1, m2, m3 = st.columns(3)
    m1.metric("Novelty · pixels", f"{view.novelty['pixel']['score']:.2f}")
    m2.metric("Novelty · features", f"{view.novelty['feature']['score']:.2f}")
    m3.metric("Copies", f"{view.novelty['pixel']['copies']:.0%}", help="generated digits nearer to a training digit "
              "than 99 % of held-out real digits are (pixel space)")
    st.caption(f"{len(view.generated)} samples ({view.choice}) against {len(view.train):,} training digits.")
    st.plotly_chart(neighbours_figure(view.generated, view.train, view.neighbours), key="ev_mem_fig")
    st.plotly_chart(novelty_figure(view.novelty), key="ev_mem_hist")


@st.cache_data(max_entries=1, show_spinner="Measuring the real digits' variety…")
def _real_spread() -> float:
    from diffusion_core.editing.guidance import real_variety

    return real_variety(shipped_classifier()[0])


def _guidance_curve(record: ModelRecord, kind: str, scales: list[float], n: int, on_progress=None) -> list[dict]:
    from diffusion_core.views.sampler_costs import mnist_test_reference

    from .data import shipped_noisy_classifier

    classifier = shipped_classifier()[0]
    reference, _ = mnist_test_reference(classifier)
    return guidance_curve(load_checkpoint_cached(record.weights), kind, scales, n, classifier, reference,
                          shipped_noisy_classifier()[0], on_progress=on_progress, reference_spread=_real_spread())


def guidance_section(records: list[ModelRecord]) -> None:
    """Fidelity against diversity over the guidance scale w: classifier-free guidance of a class-conditional
    model or classifier guidance of a noise model on the noise-aware classifier's schedule, on the digits 0–9 in
    turn. Only the models the chosen guidance can steer are offered; it opens on one that shows the trade-off."""
    from .data import shipped_noisy_classifier

    if shipped_classifier()[0] is None:
        st.caption("Guidance curves need the shipped classifier (checkpoints/classifier.safetensors).")
        return
    c1, c2, c3, c4 = st.columns([2, 2, 2, 1])
    kind = c1.selectbox("Guidance", CURVE_KINDS, key="ev_g_kind")
    noisy = shipped_noisy_classifier()[0]
    fit = {r.name: cannot_guide(r.config, kind, noisy) for r in records if r.weights is not None}
    models = {r.name: r for r in records if r.weights is not None and fit[r.name] is None}
    if not models:
        reasons = sorted({why for why in fit.values() if why})
        st.info(f"No model here can be steered by {kind} guidance: " + ("; ".join(reasons) or "no checkpoint yet"))
        return
    names = list(models)
    if st.session_state.get("ev_g_model") not in names or st.session_state.get("ev_g_model_kind", kind) != kind:
        st.session_state["ev_g_model"] = preferred_model(names, kind)  # a new guidance opens on its own model
    st.session_state["ev_g_model_kind"] = kind
    name = c2.selectbox("Model", names, key="ev_g_model",
                        help="Only the models this guidance can steer (classifier-free: class-conditional ones; "
                             "classifier: noise models on the noise-aware classifier's schedule)")
    text = c3.text_input("Scales w", "0, 0.5, 1, 2, 4", key="ev_g_scales")
    n = number_field("Samples per w", 20, 1000, 200, "ev_g_n", container=c4, step=100)
    per_w = {"classifier-free": 11.5, "classifier": 8.0}[kind]  # s per 200 samples, measured on 2 idle Xeon cores
    st.caption(f"About {per_w * int(n.value or 200) / 200:.0f} s per scale on 2 idle CPU cores (20 steps of "
               f"{SAMPLER}; classifier-free guidance calls the network twice per step, classifier guidance adds a "
               "gradient through the noise-aware classifier); longer while others compute.")
    if st.button("Compute the guidance curve", key="ev_g_run"):
        with user_errors("Could not compute the guidance curve"):
            require([n])
            try:
                scales = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
            except ValueError:
                raise ValueError(f"scales must be numbers separated by commas; got {text!r}") from None
            rows = run_queued(_guidance_curve, models[name], kind, scales, int(n.value),
                              progress=f"{kind} guidance of {name}: scale")
            conditional = bool(((models[name].config.get("model") or {}).get("params") or {}).get("num_classes"))
            st.session_state.setdefault("ev_g_curves", {})[f"{name} · {kind}"] = (
                rows, w0_meaning(kind, conditional))
    curves = st.session_state.get("ev_g_curves", {})
    if curves:
        st.plotly_chart(guidance_curve_figure({k: rows for k, (rows, _) in curves.items()},
                                              {k: w0 for k, (_, w0) in curves.items()}), key="ev_g_fig")
        for label, (rows, _) in curves.items():
            st.caption(f"**{label}.** {describe_curve(rows)}")
        st.caption("Each point: samples steered to the digits 0–9 in turn at that w. Fidelity: the share the "
                   "classifier is sure of; variety: how far the samples of one asked digit spread in the "
                   "classifier's feature space, against real digits of that class.")


def network_calls_tab() -> None:
    """FID against network calls for diffusion, flow, reflowed and distilled models (benchmarks/flow_vs_diffusion.py
    writes what this draws; measuring it takes minutes, so the page reads the file)."""
    with user_errors("Cannot read the flow-versus-diffusion benchmark"):
        result = read_results()
        if result is None:
            st.info(f"Not measured yet: `python benchmarks/flow_vs_diffusion.py` measures the shipped diffusion and "
                    f"flow models at 1, 2, 4, 8 and 20 network calls and writes {results_path().name}.")
            return
        st.caption(f"Each model at each budget of network calls with the best of its own few-step samplers "
                   f"({result['n']} samples per point, classifier-FID over the floor of {result['n']} real digits "
                   f"against the MNIST test split; measured {result.get('measured', '?')} on "
                   f"{result.get('machine', '?')}). Straight paths need fewer calls: a diffusion model's digits fall "
                   "apart below about 8 calls, a reflowed flow's hold at 2, a distilled one is made for 1.")
        st.plotly_chart(families_vs_nfe_figure(result["rows"]), key="ev_nfe_fig")
        st.dataframe(pd.DataFrame([{k: r[k] for k in ("model", "family", "nfe", "sampler", "steps", "fid",
                                                      "fid_over_floor", "kid", "confident", "digits")}
                                   for r in result["rows"]]), hide_index=True, key="ev_nfe_table")
