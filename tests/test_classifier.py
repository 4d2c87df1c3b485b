"""The MNIST classifier: the shipped one's accuracy, training determinism, and strict checkpoints."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
import torch

from diffusion_core.cli import main
from diffusion_core.evaluation.classifier import (
    ClassifierTrainConfig,
    MNISTClassifier,
    accuracy,
    build_classifier,
    load_classifier,
    random_affine,
    save_classifier,
    train_classifier,
)
from diffusion_core.io.checkpoints import CheckpointError, shipped_dir
from diffusion_core.io.data import load_dataset

TINY = {"arch": "mnist-cnn", "params": {"channels": [4, 8], "feature_dim": 16, "num_classes": 10}}


def test_shipped_classifier_classifies_the_test_digits():
    clf = load_classifier()  # checkpoints/classifier.{safetensors,json}
    test = load_dataset("mnist", "test", download=False)
    acc = accuracy(clf, test.images, test.labels)
    assert acc >= 0.97
    # the card's numbers are the model's: the stored test accuracy is what we measure now
    assert clf.config["metrics"]["test_accuracy"] == pytest.approx(acc, abs=1e-6)
    assert clf.config["metrics"]["val_accuracy"] >= 0.97
    card = (shipped_dir() / "classifier.md").read_text()
    assert "python -m diffusion_core train-classifier" in card and f"test {100 * acc:.1f}%" in card


def test_features_and_logits_shapes():
    torch.manual_seed(0)
    m = build_classifier(TINY).eval()
    x = torch.rand(5, 1, 28, 28) - 0.5
    assert m.features(x).shape == (5, 16) and m(x).shape == (5, 10)
    assert (m.features(x) >= 0).all()  # after ReLU
    with pytest.raises(ValueError, match="N×1×28×28"):
        m.features(torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match="unknown classifier parameter"):
        build_classifier({"arch": "mnist-cnn", "params": {"depth": 3}})
    with pytest.raises(ValueError, match="feature_dim"):
        MNISTClassifier(feature_dim=1)


def test_augmentation_keeps_black_background_and_identity_at_zero():
    x = torch.rand(4, 1, 28, 28) - 0.5
    gen = torch.Generator().manual_seed(0)
    assert torch.allclose(random_affine(x, 0.0, 0.0, 0.0, gen), x, atol=1e-6)
    black = torch.full((3, 1, 28, 28), -0.5)
    assert torch.allclose(random_affine(black, 2.0, 10.0, 0.1, gen), black)
    moved = random_affine(x, 2.0, 10.0, 0.1, gen)
    assert moved.shape == x.shape and not torch.allclose(moved, x)


def test_training_is_seeded_and_reports_accuracy():
    cfg = ClassifierTrainConfig(epochs=1, limit=300, val_size=60, download=False, params=TINY["params"])
    a, b = train_classifier(cfg), train_classifier(cfg)
    for (k, va), (_, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert torch.equal(va, vb), k
    m = a.config["metrics"]
    assert a.config["training"]["n_fit"] == 240 and a.config["training"]["n_val"] == 60
    assert 0 <= m["val_accuracy"] <= 1 and m["n_test"] == 500
    with pytest.raises(ValueError, match="val_size must be smaller"):
        train_classifier(ClassifierTrainConfig(epochs=1, limit=50, val_size=60, download=False))
    with pytest.raises(ValueError, match="lr must be"):
        ClassifierTrainConfig(lr=0).validate()


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(3)
    model = build_classifier(TINY).eval()
    path = save_classifier(tmp_path / "clf", model, {"model": TINY, "epochs": 1, "metrics": {"val_accuracy": 0.5}})
    return model, path


def test_round_trip_gives_the_same_outputs(saved):
    model, path = saved
    loaded = load_classifier(path)
    x = torch.rand(6, 1, 28, 28) - 0.5
    assert torch.equal(model(x), loaded(x)) and torch.equal(model.features(x), loaded.features(x))
    assert loaded.config["format"] == "diffusion-lab-classifier" and loaded.config["epochs"] == 1


def _rewrite_json(path, **changes):
    cpath = path.with_suffix(".json")
    meta = json.loads(cpath.read_text())
    meta.update(changes)
    cpath.write_text(json.dumps(meta))


def test_tampered_weights_are_refused(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_classifier(path)


def test_config_problems_are_refused(saved):
    _, path = saved
    _rewrite_json(path, extra_field=1)
    with pytest.raises(CheckpointError, match="unknown field"):
        load_classifier(path)
    _rewrite_json(path, extra_field=None)
    meta = json.loads(path.with_suffix(".json").read_text())
    del meta["extra_field"]
    meta["format"] = "diffusion-lab-checkpoint"
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not a Diffusion Lab classifier"):
        load_classifier(path)
    _rewrite_json(path, format="diffusion-lab-classifier", model={"arch": "mnist-cnn", "params": {"channels": [9]}})
    with pytest.raises(CheckpointError, match="cannot be built"):
        load_classifier(path)
    with pytest.raises(CheckpointError, match="not found"):
        load_classifier(path.parent / "missing")


def test_pickle_weights_are_refused_even_with_a_matching_hash(saved):
    model, path = saved
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    path.write_bytes(buf.getvalue())
    _rewrite_json(path, weights_sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    with pytest.raises(CheckpointError, match="pickle"):
        load_classifier(path)


def test_weights_of_another_shape_are_refused(saved, tmp_path):
    _, path = saved
    other = build_classifier({"arch": "mnist-cnn", "params": {"channels": [4, 4], "feature_dim": 16}})
    other_path = save_classifier(tmp_path / "other", other, {"model": TINY})  # config says [4, 8]
    with pytest.raises(CheckpointError, match="does not fit"):
        load_classifier(other_path)


def test_cli_train_classifier_writes_a_loadable_checkpoint_and_card(tmp_path, capsys):
    out = tmp_path / "clf"
    code = main(["train-classifier", "--out", str(out), "--epochs", "1", "--limit", "200", "--val-size", "50",
                 "--no-download"])
    assert code == 0
    assert "validation accuracy" in capsys.readouterr().out
    clf = load_classifier(out)
    assert clf.config["training"]["n_fit"] == 150
    card = out.with_suffix(".md").read_text()
    assert "--epochs 1" in card and "--limit 200" in card and "validation" in card
    assert main(["train-classifier", "--out", str(out), "--epochs", "0"]) == 2
    assert "argument --epochs: must be an integer between 1 and 1000" in capsys.readouterr().err
