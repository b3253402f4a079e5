import pickle

import pytest
import torch
from torch import nn

from livervae.errors import InputError
from livervae.io.checkpoint import (
    apply_settings,
    load_matching_weights,
    load_model_weights,
    read_checkpoint,
    replace_stage_one,
)
from livervae.networks import SegResNetVAEWithHeads
from livervae.paths import repo_root


def test_load_model_weights_is_safe_and_specific(tmp_path):
    net = nn.Linear(3, 2)
    torch.save({"model": net.state_dict()}, tmp_path / "good.pt")
    other = nn.Linear(3, 2)
    load_model_weights(other, tmp_path / "good.pt")
    assert torch.equal(other.weight, net.weight)
    with pytest.raises(InputError, match="checkpoint not found"):
        load_model_weights(other, tmp_path / "missing.pt")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "good.pt").read_bytes()[:100])
    with pytest.raises(InputError, match="truncated.pt: cannot load as a weights-only checkpoint"):
        load_model_weights(other, tmp_path / "truncated.pt")
    with open(tmp_path / "pickled.pt", "wb") as handle:  # needs code to unpickle: refused by weights_only
        pickle.dump({"model": nn.Linear(3, 2)}, handle)
    with pytest.raises(InputError, match="cannot load as a weights-only checkpoint"):
        load_model_weights(other, tmp_path / "pickled.pt")
    with pytest.raises(InputError, match="weights do not fit the network"):
        load_model_weights(nn.Linear(4, 2), tmp_path / "good.pt")


def test_load_model_weights_takes_one_stage_of_a_chained_checkpoint(tmp_path):
    chained = nn.ModuleDict({"liver_net": nn.Linear(3, 2), "tumor_net": nn.Linear(3, 2)})
    torch.save({"model": chained.state_dict()}, tmp_path / "two_stage.pt")
    tumour = load_model_weights(nn.Linear(3, 2), tmp_path / "two_stage.pt", prefix="tumor_net.")
    assert torch.equal(tumour.weight, chained["tumor_net"].weight)
    assert not torch.equal(tumour.weight, chained["liver_net"].weight)
    with pytest.raises(InputError, match="holds no weights under 'vessel_net.'"):
        load_model_weights(nn.Linear(3, 2), tmp_path / "two_stage.pt", prefix="vessel_net.")
    with pytest.raises(InputError, match="weights do not fit the network"):
        load_model_weights(nn.Linear(4, 2), tmp_path / "two_stage.pt", prefix="tumor_net.")


def test_load_matching_weights_starts_the_tumour_stage_from_the_shipped_liver_model(tmp_path):
    shipped = repo_root() / "bundles" / "liver_ct_segmentation" / "models" / "model.pt"
    liver = torch.load(shipped, weights_only=True)["model"]
    # The tumour stage as the CPU preset builds it: other patch size (so other VAE dense layers), a severity head.
    tumour = SegResNetVAEWithHeads(
        input_image_size=[48, 48, 48],
        init_filters=8,
        in_channels=1,
        out_channels=2,
        blocks_down=[1, 2, 2, 4],
        blocks_up=[1, 1, 1],
        severity_head=True,
    )
    before = {k: v.clone() for k, v in tumour.state_dict().items()}
    load_matching_weights(tumour, shipped)
    after = tumour.state_dict()
    copied = {k for k in after if not torch.equal(after[k], before[k])}
    assert torch.equal(after["convInit.conv.weight"], liver["convInit.conv.weight"])
    assert all(torch.equal(after[k], liver[k]) for k in copied)
    assert "down_layers.3.1.conv2.conv.weight" in copied and "conv_final.0.weight" in copied
    # The output layer (liver logits there, tumour logits here), the VAE's patch-size-bound dense layer and the
    # head the liver model lacks keep their initial values.
    kept = {k for k in after if k not in copied}
    assert {"conv_final.2.conv.weight", "vae_fc1.weight"} <= kept
    assert any(k.startswith("severity") for k in kept)
    with pytest.raises(InputError, match="shares no weights"):
        load_matching_weights(nn.Linear(3, 2), shipped)
    with pytest.raises(InputError, match="checkpoint not found"):
        load_matching_weights(tumour, tmp_path / "missing.pt")


def test_read_checkpoint_returns_state_and_settings(tmp_path):
    torch.save({"model": {"w": torch.ones(2)}, "settings": {"pixdim": [3.0, 3.0, 3.0]}}, tmp_path / "m.pt")
    state, settings = read_checkpoint(tmp_path / "m.pt")
    assert torch.equal(state["w"], torch.ones(2)) and settings == {"pixdim": [3.0, 3.0, 3.0]}
    whole, _ = read_checkpoint(tmp_path / "m.pt", key=None)
    assert set(whole) == {"model", "settings"}
    torch.save({"w": torch.zeros(1)}, tmp_path / "plain.pt")  # a plain state dict, no record
    state, settings = read_checkpoint(tmp_path / "plain.pt")
    assert set(state) == {"w"} and settings == {}
    with pytest.raises(InputError, match="nope.pt: no trained model"):
        read_checkpoint(tmp_path / "nope.pt", missing="no trained model")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(InputError, match="list.pt: does not hold a state dict"):
        read_checkpoint(tmp_path / "list.pt")


def test_apply_settings_sets_the_configs_own_keys_only():
    from monai.bundle import ConfigParser

    config = {"pixdim": [1.5, 1.5, 1.5], "init_filters": 16, "network_def": {"init_filters": "@init_filters"}}
    recorded = {"pixdim": [2.0, 2.0, 2.0], "init_filters": 8, "unknown": 1}
    assert apply_settings(dict(config), recorded) == {
        "pixdim": [2.0, 2.0, 2.0],
        "init_filters": 8,
        "network_def": {"init_filters": "@init_filters"},
    }
    parser = ConfigParser(config)
    apply_settings(parser, recorded)
    assert parser.get_parsed_content("network_def")["init_filters"] == 8 and "unknown" not in parser


def test_checkpoints_of_the_old_spelling_read_in_the_new_one(tmp_path):
    old = {
        "model": {"tumour_net.w": torch.ones(1), "liver_net.w": torch.zeros(1)},
        "settings": {"tumour_threshold": 0.3},
    }
    torch.save(old, tmp_path / "old.pt")
    state, settings = read_checkpoint(tmp_path / "old.pt")
    assert set(state) == {"tumor_net.w", "liver_net.w"} and settings == {"tumor_threshold": 0.3}
    torch.save({"model": {"tumour_net.weight": torch.full((1, 1), 2.0)}}, tmp_path / "stage.pt")
    linear = load_model_weights(nn.Linear(1, 1, bias=False), tmp_path / "stage.pt", prefix="tumor_net.")
    assert float(linear.weight) == 2.0


def _chain_and_liver(tmp_path, liver_settings=None, liver_net=None):
    chained = nn.ModuleDict({"liver_net": nn.Linear(3, 2), "tumor_net": nn.Linear(3, 2)})
    chain_settings = {"pixdim": [2.0, 2.0, 2.0], "liver_pixdim": [4.0, 4.0, 4.0], "liver_init_filters": 8}
    torch.save({"model": chained.state_dict(), "settings": chain_settings}, tmp_path / "two_stage.pt")
    liver = liver_net or nn.Linear(3, 2)
    settings = liver_settings or {"pixdim": [4.0, 4.0, 4.0], "init_filters": 8}
    torch.save({"model": liver.state_dict(), "settings": settings}, tmp_path / "liver.pt")
    return chained, liver


def test_replace_stage_one_swaps_the_liver_stage_and_keeps_the_tumour_stage(tmp_path):
    from livervae.cli import main

    chained, liver = _chain_and_liver(tmp_path)
    out = tmp_path / "rechained.pt"
    args = ["rechain", "--two-stage", str(tmp_path / "two_stage.pt"), "--liver", str(tmp_path / "liver.pt")]
    assert main([*args, "--out", str(out)]) == 0
    state, settings = read_checkpoint(out)
    assert torch.equal(state["liver_net.weight"], liver.weight) and torch.equal(state["liver_net.bias"], liver.bias)
    assert not torch.equal(state["liver_net.weight"], chained["liver_net"].weight)
    assert torch.equal(state["tumor_net.weight"], chained["tumor_net"].weight)
    assert settings["liver_pixdim"] == [4.0, 4.0, 4.0] and settings["pixdim"] == [2.0, 2.0, 2.0]


def test_replace_stage_one_refuses_a_liver_model_that_does_not_fit(tmp_path):
    out = tmp_path / "rechained.pt"
    _chain_and_liver(tmp_path, liver_settings={"pixdim": [3.0, 3.0, 3.0], "init_filters": 8})
    with pytest.raises(InputError, match=r"liver.pt: was trained with pixdim=\[3.0, 3.0, 3.0\], the chain expects"):
        replace_stage_one(tmp_path / "two_stage.pt", tmp_path / "liver.pt", out)
    _chain_and_liver(tmp_path, liver_net=nn.Linear(4, 2))
    with pytest.raises(InputError, match="liver.pt: its weights do not fit the chain's liver network"):
        replace_stage_one(tmp_path / "two_stage.pt", tmp_path / "liver.pt", out)
    with pytest.raises(InputError, match="liver.pt: holds no liver_net"):
        replace_stage_one(tmp_path / "liver.pt", tmp_path / "liver.pt", out)
    assert not out.exists()


def test_rechain_record_describes_the_new_stage_one_in_the_bundle_metadata(tmp_path, monkeypatch, capsys):
    import json

    from livervae.bundle import file_sha256
    from livervae.cli import main

    _chain_and_liver(tmp_path)
    bundle = tmp_path / "bundle"
    (bundle / "models").mkdir(parents=True)
    (bundle / "configs").mkdir()
    metadata = bundle / "configs" / "metadata.json"
    metadata.write_text(json.dumps({"training": {"epochs": 3, "model_sha256": file_sha256(tmp_path / "two_stage.pt")}}))
    monkeypatch.setattr("livervae.bundle.bundle_root", lambda name, allow_external=False: bundle)
    model = bundle / "models" / "model.pt"
    args = ["rechain", "--two-stage", str(tmp_path / "two_stage.pt"), "--liver", str(tmp_path / "liver.pt")]
    assert main([*args, "--out", str(tmp_path / "elsewhere.pt"), "--record"]) == 2
    assert "--record needs --out" in capsys.readouterr().err and not (tmp_path / "elsewhere.pt").exists()
    assert main([*args, "--out", str(model), "--record"]) == 0
    training = json.loads(metadata.read_text())["training"]
    assert training["epochs"] == 3 and training["model_sha256"] == file_sha256(model)
    assert training["model_bytes"] == model.stat().st_size
    assert training["stage_1"]["liver_model_sha256"] == file_sha256(tmp_path / "liver.pt")
    assert training["stage_1"]["two_stage_model_sha256"] == file_sha256(tmp_path / "two_stage.pt")
    assert training["stage_1"]["command"].startswith("livervae rechain --two-stage")
    # Rechaining again from the model stage 2's record describes works; from any other model it is refused
    # before the bundle's model is touched.
    assert main([*args, "--out", str(model), "--record"]) == 0
    before = file_sha256(model)
    args[2] = str(tmp_path / "liver.pt")
    assert main([*args, "--out", str(model), "--record"]) == 2
    assert "is not the model the bundle's training record describes" in capsys.readouterr().err
    assert file_sha256(model) == before
