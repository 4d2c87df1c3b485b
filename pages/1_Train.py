"""Train: choose data, process, schedule and optimiser; Start runs `python -m diffusion_core train` in the
background (diffusion_core.services.jobs). Live progress reattaches from the URL (?run=<id>) after a reload."""

import streamlit as st

from diffusion_core.io.data import DATASETS
from diffusion_core.process import process_from_config
from diffusion_core.process.gaussian import noise_diffusion_config
from diffusion_core.process.schedules import KINDS_WITHOUT_BETAS, MAX_T, PRESETS, SCHEDULE_KINDS, make_schedule
from diffusion_core.services import jobs, run_status
from diffusion_core.services.ownership import MAX_NAME
from diffusion_core.training.config import INT_RANGES, LR_DECAYS, MAX_BATCH, MAX_EPOCHS
from diffusion_core.training.recipes import RECIPES
from pages.lab_ui import NumberField, number_field, require, setup_page, user_errors
from pages.lab_ui.identity import current_actor, teacher_signin
from pages.lab_ui.train_ui import (
    PROCESS_KINDS,
    RECIPE_LABELS,
    degradation_widgets,
    fid_widgets,
    flow_widgets,
    open_run,
    runs_table,
    show_estimate,
    show_run,
    target_widgets,
    unet_widgets,
    where_widget,
)
from pages.lab_ui.url_state import url_state

ARCH_LABELS = {"cnn": "Report CNN (hidden 16, 32, 32, 16; 7×7 convs)", "unet": "U-Net (learns faster per FLOP)"}
# the form's fields a recipe sets (a new recipe clears them, so they open on its values)
RECIPE_FIELDS = ("train_arch", "train_epochs", "train_batch", "train_lr", "train_use_ema", "train_ema", "train_warmup",
                 "train_lr_decay", "train_prediction", "train_fid", "train_fid_every", "train_base_channels",
                 "train_patch", "train_schedule_mode", "train_kind", "train_process", "train_time_sampling")
DATA_LABELS = {"mnist": "MNIST (full set when present or downloadable, else the bundled 5,000 digits)",
               "fashion-mnist": "Fashion-MNIST"}

setup_page("Train", (
    "Train a denoiser in the background. The job keeps running if you reload or close the tab: its "
    "address (`?run=…`) brings you back to it. **Stop** ends it cleanly after the current batch and keeps "
    "the last complete epoch; **Resume** continues from there. Finished runs appear as models on every page."
))
url_state("train", ["train_recipe", "train_warmup", "train_lr_decay", "train_base_channels", "train_patch",
                    "train_dataset", "train_limit", "train_process", "train_schedule_mode", "train_preset",
                    "train_kind", "train_beta1", "train_beta2", "train_T", "train_arch", "train_epochs",
                    "train_batch", "train_lr", "train_use_ema", "train_ema", "train_seed", "train_conditional",
                    "train_fid", "train_fid_every", "train_fid_samples", "train_prediction", "train_weighting",
                    "train_snr_gamma", "train_degradation", "train_degradation_T_*", "train_degradation_schedule",
                    "train_degradation_params", "train_loss", "train_flow_T", "train_time_sampling",
                    "train_logit_mean", "train_logit_std"])


teacher_signin()
watched = st.query_params.get("run")
if watched:
    try:
        active_now = run_status.read_run(watched).active
    except run_status.JobError:
        active_now = False
    st.fragment(show_run, run_every=1.0 if active_now else None)(watched, active_now)
    st.divider()

# ---------------------------------------------------------------- a new run

def _recipe_chosen() -> None:
    """A new recipe: forget the form's values, so every field opens on the recipe's."""
    for key in RECIPE_FIELDS:
        st.session_state.pop(key, None)


with st.expander("New training run", expanded=not watched):
    fields: list[NumberField] = []  # every number box of the form: Start refuses any out of range
    recipe_name = st.radio("Recipe", list(RECIPES), format_func=RECIPE_LABELS.get, horizontal=True, key="train_recipe",
                           on_change=_recipe_chosen, help="Fills the form below; change any field after.")
    recipe = RECIPES[recipe_name]
    d1, d2 = st.columns(2)
    dataset = d1.selectbox("Dataset", DATASETS, format_func=DATA_LABELS.get, key="train_dataset")
    limit = number_field("Training images (0 = all)", 0, 100_000, 0, "train_limit", container=d2, step=500,
                         help="Train on the first N images only: quick experiments.")
    fields.append(limit)

    process = st.radio("Process", PROCESS_KINDS, horizontal=True, key="train_process", index=int(bool(recipe.get(
        "flow"))), help="noise: Algorithm 1 (predict ε); flow: a velocity on the straight path from data to noise; "
        "cold: Algorithm 3 (restore x from a degraded image)")
    options: dict[str, object] = {}
    if process.startswith("Cold"):
        options.update(degradation_widgets(fields))
    elif process.startswith("Flow"):
        options.update(flow_widgets(fields, recipe))
    else:
        mode = st.radio("Schedule", ["Report preset", "Custom"], index=1 if recipe.get("schedule") else 0,
                        horizontal=True, key="train_schedule_mode")
        if mode == "Report preset":
            preset = st.selectbox("Preset", list(PRESETS), key="train_preset", format_func=lambda name: (
                process_from_config(noise_diffusion_config(preset=name)).describe()))
            options["preset"] = preset
        else:
            s1, s2, s3, s4 = st.columns(4)
            kind = s1.selectbox("Kind", SCHEDULE_KINDS, key="train_kind",
                                index=SCHEDULE_KINDS.index(str(recipe.get("schedule", "linear"))),
                                help="cosine: ᾱ_t = cos²(π/2·(t/T + s)/(1 + s)), no β1/β2")
            no_betas = kind in KINDS_WITHOUT_BETAS  # cosine fixes ᾱ_t itself
            beta1 = number_field("β1", 0.0, 1.0, 1e-4, "train_beta1", container=s2, step=1e-5, format="%.2e",
                                 disabled=no_betas)
            beta2 = number_field("β2", 0.0, 1.0, 0.02, "train_beta2", container=s3, step=1e-3, format="%.2e",
                                 disabled=no_betas)
            T = number_field("T", 1, MAX_T, 1000, "train_T", container=s4, step=100)
            schedule_fields = [T] if no_betas else [beta1, beta2, T]
            fields += schedule_fields
            betas = {} if no_betas else {"beta1": beta1.value, "beta2": beta2.value}
            if all(f.ok for f in schedule_fields):  # what Start would refuse, and the Schedules page's warning, now
                with user_errors("This schedule cannot be trained"):
                    schedule = make_schedule(kind, T=int(T)) if no_betas else make_schedule(
                        kind, float(beta1), float(beta2), int(T))
                    if (warning := schedule.end_warning("This schedule")) is not None:
                        st.warning(warning)
            options.update(schedule=kind, T=T.value, **betas)
        options.update(target_widgets(fields, str(recipe.get("prediction", "eps"))))

    a1, a2, a3 = st.columns(3)
    arch = a1.selectbox("Architecture", list(ARCH_LABELS), format_func=ARCH_LABELS.get, key="train_arch",
                        index=list(ARCH_LABELS).index(str(recipe["arch"])))
    epochs = number_field("Epochs", 1, MAX_EPOCHS, int(recipe["epochs"]), "train_epochs", container=a2)
    batch = number_field("Batch size", 1, MAX_BATCH, int(recipe["batch_size"]), "train_batch", container=a3)
    o1, o2, o3, o4 = st.columns(4)
    lr = number_field("Learning rate", 1e-6, 1.0, float(recipe["lr"]), "train_lr", container=o1, step=1e-4,
                      format="%.1e")
    use_ema = o2.checkbox("EMA of the weights", value=recipe.get("ema") is not None, key="train_use_ema",
                          help="Sample from an exponential moving average of the weights: smoother, better samples")
    ema = number_field("EMA decay", 0.5, 0.99999, float(recipe.get("ema") or 0.999), "train_ema", container=o3,
                       step=0.001, format="%.4f", disabled=not use_ema)
    seed = number_field("Seed", 0, 2**31 - 1, 0, "train_seed", container=o4)
    w1, w2 = st.columns(2)
    warmup = number_field("Learning-rate warm-up (steps)", *INT_RANGES["warmup"], int(recipe.get("warmup", 0)),
                          "train_warmup", container=w1, help="the rate rises linearly from 0 over these optimiser "
                          "steps: a high rate from the first step can throw a fresh network off")
    lr_decay = w2.selectbox("Learning-rate decay", LR_DECAYS,
                            index=LR_DECAYS.index(str(recipe.get("lr_decay", "none"))), key="train_lr_decay",
                            help="cosine: the rate falls as a half cosine to 0 at the last step, so the run ends "
                                 "on small, careful steps")
    fields += [epochs, batch, lr, seed, warmup] + ([ema] if use_ema else [])
    if arch == "unet":
        options.update(unet_widgets(recipe, fields, cold=process.startswith("Cold")))
    options.update(fid_widgets(recipe, dataset, fields))
    options.update(arch=arch, epochs=epochs.value, batch_size=batch.value, lr=lr.value, warmup=warmup.value,
                   lr_decay=lr_decay,
                   ema=ema.value if use_ema else None, seed=seed.value, dataset=dataset,
                   limit=limit.value or None)

    show_estimate(options, fields)
    on_cluster = where_widget()
    name = st.text_input("Name this run (optional)", key="train_name", max_chars=MAX_NAME,
                         placeholder="e.g. Ada · cosine, 30 epochs",
                         help="Shown in the list of runs and in every page's model picker; the run stays yours "
                              "(this browser's): others can watch and sample it, not stop or delete it")
    if st.button("Start training", type="primary", key="train_start"):
        with user_errors("Could not start training"):
            require(fields)  # a value out of range is refused, never replaced by the last valid one
            run = jobs.start_training(options, owner=current_actor().owner, name=name,  # every rule checked there
                                      cluster=on_cluster)
            open_run(run.run_id)
            st.rerun()

st.subheader("Runs")
any_active = any(r.active for r in run_status.list_runs())
st.fragment(runs_table, run_every=1.0 if any_active else None)(any_active)
