"""The published Llama 4 configs the memory planner knows by name (`plan(preset="scout")`).

config.json as Hugging Face publishes it for the Instruct checkpoints (LLAMA4.md §1.2, §1.3), only
the fields that differ from transformers' defaults or that the planner reads; parsed by the same C++
config reader as a checkpoint folder. The FP8 Maverick checkpoint differs only in its
quantization_config (FP8 routed experts); `plan(preset=..., quantization="fp8")` models it.
"""
from __future__ import annotations

_VISION = {
    "hidden_size": 1408, "num_hidden_layers": 34, "num_attention_heads": 16, "intermediate_size": 5632,
    "image_size": 336, "patch_size": 14, "num_channels": 3, "pixel_shuffle_ratio": 0.5,
    "projector_input_dim": 4096, "projector_output_dim": 4096, "vision_output_dim": 4096,
    "multi_modal_projector_bias": False, "rope_theta": 10000, "norm_eps": 1e-5,
    "vision_feature_layer": -1, "vision_feature_select_strategy": "default", "model_type": "llama4_vision_model",
}

_TEXT_COMMON = {
    "model_type": "llama4_text", "vocab_size": 202048, "hidden_size": 5120, "intermediate_size": 8192,
    "intermediate_size_mlp": 16384, "num_hidden_layers": 48, "num_attention_heads": 40,
    "num_key_value_heads": 8, "head_dim": 128, "num_experts_per_tok": 1, "attention_chunk_size": 8192,
    "rope_theta": 500000.0, "floor_scale": 8192, "attn_scale": 0.1, "rms_norm_eps": 1e-5,
    "hidden_act": "silu", "attention_bias": False, "no_rope_layer_interval": 4,
    "bos_token_id": 200000, "eos_token_id": [200001, 200007, 200008], "pad_token_id": 200018,
    "tie_word_embeddings": False,
}

_SCOUT_TEXT = dict(_TEXT_COMMON, num_local_experts=16, interleave_moe_layer_step=1,
                   max_position_embeddings=10485760, use_qk_norm=True, attn_temperature_tuning=True,
                   rope_scaling={"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 1.0, "original_max_position_embeddings": 8192})
_MAVERICK_TEXT = dict(_TEXT_COMMON, num_local_experts=128, interleave_moe_layer_step=2,
                      max_position_embeddings=1048576, use_qk_norm=False, attn_temperature_tuning=True,
                      rope_scaling=None)


def _model(text: dict) -> dict:
    return {"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
            "boi_token_index": 200080, "eoi_token_index": 200081, "image_token_index": 200092,
            "tie_word_embeddings": False, "text_config": text, "vision_config": dict(_VISION)}


PRESETS = {
    "scout": _model(_SCOUT_TEXT),        # meta-llama/Llama-4-Scout-17B-16E-Instruct
    "maverick": _model(_MAVERICK_TEXT),  # meta-llama/Llama-4-Maverick-17B-128E-Instruct
}
